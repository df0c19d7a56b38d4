"""The `apreg` command: `serve` and `cluster` run nodes; the client commands live in apreg.client.cli.

Every mistake ends in one line naming it and a non-zero exit: argparse's own errors (with the usage of the
subcommand that was mistyped), and settings refused by `apreg.server.settings` (exit 2).
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Sequence

from apreg import logs
from apreg.client.cli import add_commands
from apreg.server import settings as node_settings
from apreg.server.app import run_nodes
from apreg.server.users import add_user


def _version() -> str:
    try:
        return version("apreg")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of `apreg serve`, from settings.FLAGS; None means "not given", so the file and environment fill in."""
    for flag in node_settings.FLAGS:
        help_text = f"{flag.help} (default {node_settings.default_text(flag)})"
        name = "--" + flag.key
        if flag.kind is bool:
            parser.add_argument(name, dest=flag.field, action="store_const", const=not flag.inverted,
                                help=help_text)
        elif flag.choices:
            parser.add_argument(name, dest=flag.field, type=str.upper if flag.choices == logs.LEVELS else str,
                                choices=flag.choices, help=help_text)
        else:
            parser.add_argument(name, dest=flag.field, type=str if flag.kind is tuple else flag.kind,
                                metavar=flag.metavar or ("S" if flag.kind is float else None), help=help_text)
    parser.add_argument("--config", metavar="FILE.toml",
                        help="a TOML file with any of these settings, keys as the flag names, at the top level or "
                             "under [apreg] (default none)")


def _settings(args: argparse.Namespace) -> node_settings.NodeSettings:
    return node_settings.load({f.field: getattr(args, f.field) for f in node_settings.FLAGS}, args.config)


def _run_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(run_nodes([settings], reload=lambda: _settings(args)))  # SIGHUP re-reads flags and config
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
    if args.nodes < 1:
        raise ValueError(f"--nodes must be at least 1, got {args.nodes}")
    if not 1 <= args.base_port <= 65536 - args.nodes:
        raise ValueError(f"--base-port must leave room for {args.nodes} ports below 65536, got {args.base_port}")
    urls = [f"http://127.0.0.1:{args.base_port + i}" for i in range(args.nodes)]
    configs = [node_settings.load({"port": args.base_port + i, "node_id": f"node{i + 1}",
                                   "peers": ",".join(u for u in urls if u != url), "log_level": args.log_level,
                                   "log_format": args.log_format}, None)
               for i, url in enumerate(urls)]
    print("apreg cluster:", " ".join(urls), flush=True)  # node1, node2, ... in this order, in every log line
    asyncio.run(run_nodes(configs))
    return 0


class _Parser(argparse.ArgumentParser):
    """Reports an unknown flag with the usage of the subcommand it was given to, not the top level's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands: dict[str, argparse.ArgumentParser] = {}

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = self.subcommands.get(getattr(parsed, "command", None) or "", self)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="apreg", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"apreg {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run one registry node")
    _serve_flags(serve)
    serve.set_defaults(func=_run_serve)
    users = sub.add_parser("users", help="manage the --users file")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add_user = users_sub.add_parser("add", help="add or replace a user (asks for the password)")
    add_user.add_argument("name", help="the user's name")
    add_user.add_argument("--role", required=True, choices=["read", "write", "admin"], help="what it may do (required)")
    add_user.add_argument("--file", default="users.toml", help="the users file (default users.toml)")
    add_user.add_argument("--password-stdin", action="store_true",
                          help="read the password from stdin (default: ask for it)")
    add_user.set_defaults(func=_run_users_add)
    cluster = sub.add_parser("cluster", help="run N local peers wired together, in one process")
    cluster.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    cluster.add_argument("--base-port", type=int, default=8761,
                         help="the first node's port; the others follow (default 8761)")
    cluster.add_argument("--log-level", type=str.upper, choices=logs.LEVELS, default="INFO",
                         help="logging level (default INFO)")
    cluster.add_argument("--log-format", choices=logs.FORMATS, default="text",
                         help="log lines as text or JSON (default text)")
    cluster.set_defaults(func=_run_cluster)
    add_commands(sub)
    parser.subcommands = dict(sub.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func is not _run_serve:  # serve's level and format may come from its config file
        logs.configure(getattr(args, "log_level", "WARNING"), getattr(args, "log_format", "text"))
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:
        print(f"apreg: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
