"""Node settings: the `apreg serve` flags, a TOML file, and environment overrides for secrets.

Precedence, lowest first: defaults, the `--config` TOML file, environment (`APREG_SECRET`), explicit flags.
`FLAGS` is the one list of settings a user can give: the CLI builds its flags (and their help) from it, and a
config file's keys must be exactly those flag names, each with a value of the flag's type. Every mistake is a
ValueError naming the key or flag, which the CLI prints as one line.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, replace
from typing import Any, Mapping
from urllib.parse import urlsplit

from apreg.core.config import CoreConfig
from apreg.core.lease import MAX_LEASE_S, MIN_LEASE_S, lease_ms, valid_lease_s
from apreg.logs import FORMATS, LEVELS

from .discovery import parse_target
from .durability import FSYNC_POLICIES

SECRET_ENV = "APREG_SECRET"
TABLE = "apreg"  # a config file may hold its keys at the top level or under [apreg], not both
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Every duration is in seconds (fractions allowed), as on the command line."""

    host: str = "127.0.0.1"
    port: int = 8761
    node_id: str = ""  # defaults to host:port
    peers: tuple[str, ...] = ()  # base URLs of peer nodes
    eureka_peers: tuple[str, ...] = ()  # service URLs of Java Eureka peers (http://host:8761/eureka/)
    eureka_app: str = ""  # register this node as an instance of the Java peers' own app (their dashboards)
    renewal_interval: float = 30.0  # default for instances whose leaseInfo gives none
    lease_duration: float = 90.0  # default for instances whose leaseInfo gives none
    eviction_interval: float = 60.0
    renewal_threshold: float = 0.85
    renewal_window: float = 60.0
    self_preservation: bool = True
    anti_entropy_interval: float = 1.0  # LAN preset
    push_window: float = 0.0  # extra wait to coalesce eager pushes; 0: only what piles up during a push in flight
    fanout: int = 0  # peers per eager push; 0 = all (anti-entropy still reaches every peer in turn)
    secret: str | None = None  # HMAC key for peer messages
    max_body_bytes: int = 1024 * 1024  # client request bodies above this get 413
    max_peer_body_bytes: int = 64 * 1024 * 1024
    tombstone_ttl: float = 24 * 3600.0
    max_clock_skew: float = 60.0
    peer_timeout: float = 5.0
    header_timeout: float = 60.0  # a connection's time to complete its request headers, or idle between requests
    read_cache_max_age: float = 0.25  # a changing registry's full document may be served this old (0: never)
    log_level: str = "INFO"
    log_format: str = "text"
    access_log: bool = False
    tls_cert: str = ""  # PEM certificate chain: serve HTTPS (and present it to peers)
    tls_key: str = ""  # its PEM private key
    tls_ca: str = ""  # PEM CA bundle that peers' certificates must chain to (default: the system's CAs)
    peer_mtls: bool = False  # peer endpoints only for connections with a certificate the CA signed
    users: str = ""  # TOML file of client users (users.py); empty: clients need no password
    advertise_url: str = ""  # what peers and operators call this node (default: from host and port)
    peers_dns: str = ""  # NAME[:PORT] whose A/AAAA records are the peers, or an SRV name (_svc._tcp.NAME)
    peers_dns_interval: float = 30.0
    data_dir: str = ""  # keep what the node applied here (durability.py); empty: memory only
    ack_replicas: int = 0  # acknowledge a client's write once this many peers hold it (acks.py)
    fsync: str = "interval"  # always | interval | never: what a machine crash may take (durability.py)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def url(self) -> str:
        return self.advertise_url.rstrip("/") or f"{self.scheme}://{self.host}:{self.port}"

    @property
    def name(self) -> str:
        return self.node_id or f"{self.host}:{self.port}"

    def core_config(self) -> CoreConfig:
        return CoreConfig(
            renewal_interval_ms=lease_ms(self.renewal_interval), lease_duration_ms=lease_ms(self.lease_duration),
            renewal_window_ms=_ms(self.renewal_window), renewal_threshold=self.renewal_threshold,
            self_preservation=self.self_preservation, tombstone_ttl_ms=_ms(self.tombstone_ttl),
            max_clock_skew_ms=_ms(self.max_clock_skew), anti_entropy_interval_ms=_ms(self.anti_entropy_interval),
            eviction_interval_ms=_ms(self.eviction_interval), push_window_ms=round(self.push_window * 1000),
            fanout=self.fanout)

    def validate(self) -> "NodeSettings":
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535 (or 0 for any free port), got {self.port}")
        positive = ("renewal_interval", "lease_duration", "eviction_interval", "renewal_window",
                    "anti_entropy_interval", "tombstone_ttl", "max_clock_skew", "peer_timeout", "peers_dns_interval",
                    "header_timeout")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("push_window", "fanout", "read_cache_max_age", "ack_replicas"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not 0 < self.renewal_threshold <= 1:
            raise ValueError(f"renewal-threshold must be in (0, 1], got {self.renewal_threshold}")
        if self.log_level not in LEVELS:
            raise ValueError(f"log-level must be one of {', '.join(LEVELS)}, got {self.log_level!r}")
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, got {self.fsync!r}")
        if self.log_format not in FORMATS:
            raise ValueError(f"log-format must be one of {', '.join(FORMATS)}, got {self.log_format!r}")
        for peer in self.peers:
            self._check_peer(peer)
        for name in ("renewal_interval", "lease_duration"):  # the defaults of instances' own leaseInfo values
            if not valid_lease_s(getattr(self, name)):
                raise ValueError(f"{name.replace('_', '-')} must be between {MIN_LEASE_S} and {MAX_LEASE_S:.0f} s")
        if self.peers_dns:
            parse_target(self.peers_dns, self.port)
        elif self.ack_replicas > len(self.peers):
            raise ValueError(f"ack-replicas {self.ack_replicas} needs at least that many --peers (or --peers-dns), "
                             f"got {len(self.peers)}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls-cert and tls-key go together")
        if self.peer_mtls and not (self.tls_cert and self.tls_ca):
            raise ValueError("peer-mtls needs tls-cert, tls-key and tls-ca")
        self.core_config()
        return self

    def _check_peer(self, url: str) -> None:
        """A peer is another node's base URL: scheme, host and port only, and not this node."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"peer {url!r} is not a base URL such as http://host:8761")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"peer {url!r} has an invalid port") from None
        if parts.path.strip("/") or parts.query or parts.fragment:
            hint = (": that is a Eureka service URL; give apreg nodes by their base URL, "
                    f"{parts.scheme}://{parts.netloc}, and Java Eureka servers in --eureka-peers"
                    ) if "eureka" in parts.path.lower() else ""
            raise ValueError(f"peer {url!r} has a path{hint or ' (give the base URL only)'}")
        ours = {self.host} | (LOCAL_HOSTS if self.host in LOCAL_HOSTS else set())
        if self.port and port == self.port and parts.hostname in ours:
            raise ValueError(f"peer {url!r} is this node itself ({self.url}): list the other nodes only")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass(frozen=True, slots=True)
class Flag:
    """One setting a user can give, as `--KEY` on the command line and `KEY = value` in the config file."""

    key: str
    field: str  # the NodeSettings field it sets
    kind: type  # float (an integer is fine too), int, str, bool; tuple: a list of strings or "a,b"
    help: str
    default: str = ""  # shown in the help; empty: the field's default
    choices: tuple[str, ...] = ()
    inverted: bool = False  # a switch that turns its field off (--no-self-preservation)
    metavar: str | None = None  # in the usage; a number's defaults to S (seconds)


FLAGS = (
    Flag("host", "host", str, "address to listen on"),
    Flag("port", "port", int, "port to listen on; 0 takes any free port and logs it"),
    Flag("node-id", "node_id", str, "this node's id, named in its status and every log line", "HOST:PORT",
         metavar="ID"),
    Flag("peers", "peers", tuple, "comma-separated base URLs of the other nodes (http://host:port)", "none",
         metavar="URL,URL,..."),
    Flag("eureka-peers", "eureka_peers", tuple, "comma-separated service URLs of Java Eureka servers to replicate "
         "with, as Eureka peers (e.g. http://host:8761/eureka/)", "none", metavar="URL,URL,..."),
    Flag("eureka-app", "eureka_app", str, "register this node as an instance of this app (the Java peers' own "
         "spring.application.name), so their dashboards list it as an available replica", "none", metavar="APP"),
    Flag("renewal-interval", "renewal_interval", float, "renewal interval, s, for instances whose leaseInfo "
         "gives none"),
    Flag("lease-duration", "lease_duration", float, "lease duration, s, for instances whose leaseInfo gives none"),
    Flag("eviction-interval", "eviction_interval", float, "seconds between eviction passes"),
    Flag("renewal-threshold", "renewal_threshold", float, "self-preservation engages below this share of the "
         "expected renewals (and with more than 2 instances' worth missing)", metavar="SHARE"),
    Flag("renewal-window", "renewal_window", float, "seconds over which self-preservation counts renewals; once "
         "engaged it holds at least 5 windows and, after a mass silent loss, releases within max(5 windows, "
         "lease duration) + 1 window"),
    Flag("no-self-preservation", "self_preservation", bool, "evict expired leases even when renewals collapse",
         "self-preservation on", inverted=True),
    Flag("anti-entropy-interval", "anti_entropy_interval", float, "seconds between digest exchanges with a peer"),
    Flag("push-window", "push_window", float, "extra seconds to coalesce writes before an eager push; with 0, "
         "writes that arrive while a push is in flight still go out together in the next one"),
    Flag("fanout", "fanout", int, "peers per eager push; 0 = all", metavar="N"),
    Flag("tombstone-ttl", "tombstone_ttl", float, "seconds a cancel is remembered: the longest partition that "
         "cannot resurrect a cancelled instance"),
    Flag("max-clock-skew", "max_clock_skew", float, "remote timestamps further ahead than this many seconds wait "
         "until they are not"),
    Flag("read-cache-max-age", "read_cache_max_age", float, "while the registry keeps changing, a full fetch may "
         "be served as of its last render this many seconds ago; 0 renders every change"),
    Flag("header-timeout", "header_timeout", float, "a connection that has not sent a complete request's headers "
         "this many seconds after it opened (or after its last answer) is closed: idle and half-open connections "
         "cannot hold every file descriptor"),
    Flag("secret", "secret", str, f"HMAC key for peer messages (or env {SECRET_ENV}); all nodes need the same",
         "none"),
    Flag("tls-cert", "tls_cert", str, "PEM certificate (chain) to serve HTTPS with, and to present to peers", "none",
         metavar="FILE"),
    Flag("tls-key", "tls_key", str, "the PEM private key of --tls-cert", "none", metavar="FILE"),
    Flag("tls-ca", "tls_ca", str, "PEM CA bundle that peers' certificates must chain to", "the system's CAs",
         metavar="FILE"),
    Flag("peer-mtls", "peer_mtls", bool, "serve peer endpoints only to connections presenting a certificate "
         "signed by --tls-ca", "off"),
    Flag("advertise-url", "advertise_url", str, "the URL peers and operators call this node", "http(s)://HOST:PORT",
         metavar="URL"),
    Flag("peers-dns", "peers_dns", str, "NAME[:PORT] whose A/AAAA records list the peers, e.g. a Kubernetes "
         "headless Service, or an SRV name _service._tcp.NAME whose records give each peer's host and port",
         "none", metavar="NAME[:PORT]"),
    Flag("peers-dns-interval", "peers_dns_interval", float, "seconds between re-resolving --peers-dns"),
    Flag("ack-replicas", "ack_replicas", int, "acknowledge a client's write only once this many peers hold it; "
         "503 if they do not within 5 s (the write stays applied and still replicates)", metavar="K"),
    Flag("data-dir", "data_dir", str, "keep the registry in this directory (a snapshot and an append-only log), "
         "so a restarted node comes back with what it acknowledged", "none: memory only", metavar="DIR"),
    Flag("fsync", "fsync", str, "when the data dir's log is flushed to disk: always (acknowledgements wait for "
         "it), interval (once a second) or never (the kernel decides); a killed process loses nothing under any",
         choices=FSYNC_POLICIES),
    Flag("users", "users", str, "TOML file of client users and roles (apreg users add); none: clients need no "
         "password", "none", metavar="FILE"),
    Flag("log-level", "log_level", str, "logging level; DEBUG adds a line per registration, cancel and eviction",
         choices=LEVELS),
    Flag("log-format", "log_format", str, "log lines as text or as one JSON object each", choices=FORMATS),
    Flag("access-log", "access_log", bool, "log every HTTP request (one line each)", "off"),
)
BY_KEY = {flag.key: flag for flag in FLAGS}
KIND_WORDS = {float: "a number", int: "an integer", str: "a string", bool: "true or false",
              tuple: "a list of URLs (or one comma-separated string)"}


def default_text(flag: Flag) -> str:
    return flag.default or str(getattr(NodeSettings(), flag.field))


def load(flags: Mapping[str, Any], config_path: str | None = None,
         environ: Mapping[str, str] = os.environ) -> NodeSettings:
    """Build settings from a TOML file, the environment and flags given explicitly (by field; None = not given)."""
    values: dict[str, Any] = _read_config(config_path) if config_path else {}
    if environ.get(SECRET_ENV):
        values["secret"] = environ[SECRET_ENV]
    values.update({k: v for k, v in flags.items() if v is not None})
    for name, trailing in (("peers", "/"), ("eureka_peers", "")):  # apreg base URLs; Eureka service URLs
        if name in values:
            listed = values[name].split(",") if isinstance(values[name], str) else values[name]
            values[name] = tuple(u.strip().rstrip(trailing) for u in map(str, listed) if u.strip())
    return replace(NodeSettings(), **values).validate()


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    if isinstance(table.get(TABLE), dict):
        outside = sorted(k for k in table if k != TABLE)
        if outside:
            raise ValueError(f"config file {path} has keys both at the top level ({', '.join(outside)}) and in "
                             f"[{TABLE}]: put them all in one place")
        table = table[TABLE]
    values: dict[str, Any] = {}
    for key, value in table.items():
        flag = BY_KEY.get(key)
        if flag is None:
            close = difflib.get_close_matches(key.replace("_", "-"), BY_KEY, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (keys are the flag names: {', '.join(BY_KEY)})"
            raise ValueError(f"unknown setting {key!r} in {path}{hint}")
        values[flag.field] = _typed(flag, value, path)
    return values


def _typed(flag: Flag, value: Any, path: str) -> Any:
    """The value if it has the flag's type (TOML's integers pass as numbers; booleans pass as nothing else)."""
    kind = flag.kind
    ok = {float: isinstance(value, (int, float)) and not isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          str: isinstance(value, str), bool: isinstance(value, bool),
          tuple: isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))}[kind]
    if not ok:
        raise ValueError(f"{flag.key} in {path} must be {KIND_WORDS[kind]}, got {value!r}")
    if flag.choices == LEVELS:
        value = value.upper()  # as on the command line; validate() checks the choice
    if kind is bool:
        return not value if flag.inverted else value
    return float(value) if kind is float else value
