"""Node settings: the `apreg serve` flags, a TOML file, and environment overrides for secrets.

Precedence, lowest first: defaults, the `--config` TOML file, environment (`APREG_SECRET`), explicit flags.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from apreg.core.config import CoreConfig
from apreg.core.lease import MAX_LEASE_S, MIN_LEASE_S, lease_ms, valid_lease_s

from .discovery import parse_target

SECRET_ENV = "APREG_SECRET"


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
    read_cache_max_age: float = 0.25  # a changing registry's full document may be served this old (0: never)
    tls_cert: str = ""  # PEM certificate chain: serve HTTPS (and present it to peers)
    tls_key: str = ""  # its PEM private key
    tls_ca: str = ""  # PEM CA bundle that peers' certificates must chain to (default: the system's CAs)
    peer_mtls: bool = False  # peer endpoints only for connections with a certificate the CA signed
    users: str = ""  # TOML file of client users (users.py); empty: clients need no password
    advertise_url: str = ""  # what peers and operators call this node (default: from host and port)
    peers_dns: str = ""  # NAME[:PORT] whose A/AAAA records are the peers (a headless Service)
    peers_dns_interval: float = 30.0

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
            max_clock_skew_ms=_ms(self.max_clock_skew))

    def validate(self) -> "NodeSettings":
        positive = ("renewal_interval", "lease_duration", "eviction_interval", "renewal_window",
                    "anti_entropy_interval", "tombstone_ttl", "max_clock_skew", "peer_timeout", "peers_dns_interval")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive")
        if self.push_window < 0 or self.fanout < 0 or self.read_cache_max_age < 0:
            raise ValueError("push-window, fanout and read-cache-max-age must not be negative")
        if not 0 < self.renewal_threshold <= 1:
            raise ValueError("renewal-threshold must be in (0, 1]")
        for name in ("renewal_interval", "lease_duration"):  # the defaults of instances' own leaseInfo values
            if not valid_lease_s(getattr(self, name)):
                raise ValueError(f"{name.replace('_', '-')} must be between {MIN_LEASE_S} and {MAX_LEASE_S:.0f} s")
        if self.peers_dns:
            parse_target(self.peers_dns, self.port)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls-cert and tls-key go together")
        if self.peer_mtls and not (self.tls_cert and self.tls_ca):
            raise ValueError("peer-mtls needs tls-cert, tls-key and tls-ca")
        self.core_config()
        return self


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def load(flags: Mapping[str, Any], config_path: str | None = None,
         environ: Mapping[str, str] = os.environ) -> NodeSettings:
    """Build settings from a TOML file, the environment and flags given explicitly (None = not given)."""
    known = {f.name for f in fields(NodeSettings)}
    values: dict[str, Any] = {}
    if config_path:
        with open(config_path, "rb") as handle:
            table = tomllib.load(handle)
        table = table.get("apreg", table)
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ValueError(f"unknown setting {key!r} in {config_path}")
            values[name] = value
    if environ.get(SECRET_ENV):
        values["secret"] = environ[SECRET_ENV]
    values.update({k: v for k, v in flags.items() if v is not None and k in known})
    for name, trailing in (("peers", "/"), ("eureka_peers", "")):  # apreg base URLs; Eureka service URLs
        if name in values:
            listed = values[name].split(",") if isinstance(values[name], str) else values[name]
            values[name] = tuple(u.strip().rstrip(trailing) for u in map(str, listed) if u.strip())
    return replace(NodeSettings(), **values).validate()
