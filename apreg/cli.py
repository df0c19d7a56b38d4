"""The `apreg` command: `serve` and `cluster` run nodes; the client commands live in apreg.client.cli."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from typing import Sequence

from apreg.client.cli import add_commands
from apreg.server import settings as node_settings
from apreg.server.app import run_nodes
from apreg.server.users import add_user


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of `apreg serve`; None means "not given", so the TOML file and environment can fill it in."""
    add = parser.add_argument
    add("--host", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, help="port to listen on (default 8761)")
    add("--node-id", help="this node's id (default host:port)")
    add("--peers", help="comma-separated base URLs of peer nodes")
    add("--eureka-peers", help="comma-separated service URLs of Java Eureka servers to replicate with, as "
                               "Eureka peers (e.g. http://host:8761/eureka/)")
    add("--eureka-app", help="register this node as an instance of this app (the Java peers' own "
                             "spring.application.name), so their dashboards list it as an available replica")
    add("--renewal-interval", type=float, help="default renewal interval, s, for instances giving none (30)")
    add("--lease-duration", type=float, help="default lease duration, s, for instances giving none (90)")
    add("--eviction-interval", type=float, help="seconds between eviction passes (60)")
    add("--renewal-threshold", type=float, help="self-preservation engages below this share of expected renewals (0.85)")
    add("--renewal-window", type=float,
        help="seconds over which self-preservation counts renewals (60); once engaged it holds at least 5 windows "
             "and, after a mass silent loss, releases within max(5 windows, lease duration) + 1 window")
    add("--no-self-preservation", dest="self_preservation", action="store_const", const=False,
        help="evict expired leases even when renewals collapse")
    add("--anti-entropy-interval", type=float, help="seconds between digest exchanges with a peer (1)")
    add("--push-window", type=float, help="extra seconds to coalesce writes before an eager push; with 0, writes that arrive while a push is in flight still go out together in the next one (0)")
    add("--fanout", type=int, help="peers per eager push; 0 = all (0)")
    add("--tombstone-ttl", type=float, help="seconds a cancel is remembered: the longest partition that cannot "
                                           "resurrect a cancelled instance (86400)")
    add("--max-clock-skew", type=float, help="remote timestamps further ahead than this many seconds are refused (60)")
    add("--read-cache-max-age", type=float,
        help="while the registry keeps changing, a full fetch may be served as of its last render this many "
             "seconds ago; 0 renders every change (0.25)")
    add("--secret", help="HMAC key for peer messages (or env APREG_SECRET)")
    add("--tls-cert", help="PEM certificate (chain) to serve HTTPS with, and to present to peers")
    add("--tls-key", help="the PEM private key of --tls-cert")
    add("--tls-ca", help="PEM CA bundle that peers' certificates must chain to (default: the system's CAs)")
    add("--peer-mtls", action="store_true", default=None,
        help="serve peer endpoints only to connections presenting a certificate signed by --tls-ca")
    add("--advertise-url", help="the URL peers and operators call this node (default http(s)://HOST:PORT)")
    add("--peers-dns", help="NAME[:PORT] whose A/AAAA records list the peers, e.g. a Kubernetes headless Service")
    add("--peers-dns-interval", type=float, help="seconds between re-resolving --peers-dns (30)")
    add("--users", help="TOML file of client users and roles (apreg users add); none: clients need no password")
    add("--config", help="a TOML file with any of these settings (keys as flag names)")
    add("--log-level", default="INFO", help="logging level (INFO)")


def _settings(args: argparse.Namespace) -> node_settings.NodeSettings:
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "log_level", "func")}
    return node_settings.load(flags, args.config)


def _run_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(run_nodes([settings], reload=lambda: _settings(args)))
    return 0


def _run_users_add(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    add_user(args.file, args.name, args.role, password)
    print(f"apreg: {args.name} ({args.role}) written to {args.file}")
    return 0


def _run_cluster(args: argparse.Namespace) -> int:
    """N local peers in one process, each listing all the others."""
    urls = [f"http://127.0.0.1:{args.base_port + i}" for i in range(args.nodes)]
    configs = [node_settings.load({"port": args.base_port + i, "node_id": f"node{i + 1}",
                                   "peers": ",".join(u for u in urls if u != url)}, None)
               for i, url in enumerate(urls)]

    print("apreg cluster:", " ".join(urls), flush=True)
    asyncio.run(run_nodes(configs))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run one registry node")
    _serve_flags(serve_parser)
    serve_parser.set_defaults(func=_run_serve)
    users = sub.add_parser("users", help="manage the --users file")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add_user = users_sub.add_parser("add", help="add or replace a user (asks for the password)")
    add_user.add_argument("name")
    add_user.add_argument("--role", required=True, choices=["read", "write", "admin"])
    add_user.add_argument("--file", default="users.toml", help="the users file (users.toml)")
    add_user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add_user.set_defaults(func=_run_users_add)
    cluster = sub.add_parser("cluster", help="run N local peers wired together")
    cluster.add_argument("--nodes", type=int, default=3)
    cluster.add_argument("--base-port", type=int, default=8761)
    cluster.add_argument("--log-level", default="INFO")
    cluster.set_defaults(func=_run_cluster)
    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:
        print(f"apreg: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
