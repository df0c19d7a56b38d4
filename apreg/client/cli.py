"""Client commands for the `apreg` CLI: register (and renew until stopped), ls, status.

`add_commands` adds them to the main parser; each sets `func(args) -> int`, the process exit code.
When no registry answers, a command prints one line to stderr and returns 1.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any, Sequence

from apreg.logs import LEVELS

from ._codec import parse_applications
from ._client import RegistryClient
from ._config import ClientConfig
from ._errors import RegistryError
from ._http import ACCEPT_JSON, NETWORK_ERRORS, NodeFailed, NodePool

DEFAULT_REGISTRY = "http://127.0.0.1:8761"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    registry_help = f"registry base URLs, comma-separated (default $APREG_REGISTRY or {DEFAULT_REGISTRY})"

    reg = subparsers.add_parser("register", help="register an instance and renew it until Ctrl-C/SIGTERM")
    reg.add_argument("app", help="the application's name (shown upper-case)")
    reg.add_argument("--host", required=True, help="the instance's host name (required)")
    reg.add_argument("--port", type=int, required=True, help="the instance's port (required)")
    reg.add_argument("--instance-id", help="the instance's id (default HOST:app:PORT)")
    reg.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                     help="a metadata entry, repeatable (default none)")
    reg.add_argument("--renewal-interval", type=float, default=30.0, metavar="S",
                     help="seconds between renewals (default 30)")
    reg.add_argument("--lease-duration", type=float, default=90.0, metavar="S",
                     help="seconds the registry keeps the instance without a renewal (default 90)")
    reg.add_argument("--wait", type=float, default=30.0, metavar="S",
                     help="while no registry answers, keep trying (with backoff) this long before giving up "
                          "(default 30)")
    reg.add_argument("--registry", help=registry_help)
    reg.set_defaults(func=_run_register)

    ls = subparsers.add_parser("ls", help="list registered instances")
    ls.add_argument("app", nargs="?", help="only this application (default all)")
    ls.add_argument("--registry", help=registry_help)
    ls.set_defaults(func=_run_ls)

    status = subparsers.add_parser("status", help="show each registry node's /v1/status")
    status.add_argument("--registry", help=registry_help)
    status.set_defaults(func=_run_status)
    for command in (reg, ls, status):
        command.add_argument("--log-level", type=str.upper, choices=LEVELS, default="WARNING",
                             help="logging level (default WARNING)")


def _registries(args: argparse.Namespace) -> list[str]:
    raw = args.registry or os.environ.get("APREG_REGISTRY") or DEFAULT_REGISTRY
    return [u.strip() for u in raw.split(",") if u.strip()]


def _fail(message: str) -> int:
    print(f"apreg: {message}", file=sys.stderr)
    return 1


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _run_register(args: argparse.Namespace) -> int:
    try:
        metadata = dict(item.split("=", 1) for item in args.metadata)
    except ValueError:
        return _fail("--metadata takes KEY=VALUE")
    return asyncio.run(_register(args, metadata))


async def _register(args: argparse.Namespace, metadata: dict[str, str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    urls = _registries(args)
    async with RegistryClient(urls, ClientConfig(discover=False)) as client:
        try:
            reg = await client.register(args.app, host=args.host, port=args.port, instance_id=args.instance_id,
                                        metadata=metadata, renewal_interval=args.renewal_interval,
                                        lease_duration=args.lease_duration)
        except ValueError as exc:
            return _fail(str(exc))
        deadline = loop.time() + args.wait
        while not (reg.registered or reg.refused or stop.is_set()) and loop.time() < deadline:
            await asyncio.sleep(0.05)  # the client retries with backoff meanwhile
        if reg.refused:
            return _fail(f"the registry refused the registration: {_registry_error(reg.last_error)}")
        if not reg.registered:
            return _fail(f"no registry answered at {', '.join(urls)} within {args.wait:g} s ({reg.last_error})")
        print(f"registered {reg.app}/{reg.instance_id}; renewing every {reg.renewal_interval:g} s (Ctrl-C to stop)",
              flush=True)
        await stop.wait()
    print(f"cancelled {reg.app}/{reg.instance_id}", flush=True)
    return 0


def _registry_error(error: str) -> str:
    """A registry's `{"error", "detail"}` body in words; any other body as it came."""
    node, _, body = error.partition(" answered ")
    status, _, payload = body.partition(": ")
    try:
        parsed = json.loads(payload)
        return f"{node} answered {status}: {parsed['error']}: {parsed['detail']}"
    except (ValueError, TypeError, KeyError):
        return error


def _run_ls(args: argparse.Namespace) -> int:
    return asyncio.run(_ls(args))


async def _ls(args: argparse.Namespace) -> int:
    pool = NodePool(_registries(args), ClientConfig(), asyncio.get_running_loop().time)
    try:
        reply = await pool.request("GET", ClientConfig().eureka_prefix + "/apps", headers=ACCEPT_JSON)
        if reply.status != 200:
            return _fail(f"{reply.node} answered {reply.status}")
        _, entries = parse_applications(reply.json())
    except (RegistryError, ValueError) as exc:
        return _fail(str(exc))
    finally:
        await pool.close()
    wanted = args.app.upper() if args.app else None
    rows = sorted((i.app, i.instance_id, i.status, f"{i.host_name}:{i.port}", i.zone or "-")
                  for _, i in entries if wanted in (None, i.app))
    print(table(["APP", "INSTANCE", "STATUS", "ADDRESS", "ZONE"], rows))
    return 0


def _run_status(args: argparse.Namespace) -> int:
    return asyncio.run(_status(args))


async def _status(args: argparse.Namespace) -> int:
    pool = NodePool(_registries(args), ClientConfig(breaker_failures=1), asyncio.get_running_loop().time)
    rows: list[list[Any]] = []
    answered = 0
    try:
        for node in pool.nodes:
            try:
                resp = await pool.open(node, "GET", "/v1/status", headers=ACCEPT_JSON)
                async with resp:
                    status = await resp.json() if resp.status == 200 else None
            except (NodeFailed, ValueError, *NETWORK_ERRORS):
                status = None
            if not isinstance(status, dict):
                rows.append([node.url, "-", "unreachable", "-", "-", "-", "-"])
                continue
            answered += 1
            rows.append(_status_row(node.url, status))
    finally:
        await pool.close()
    if not answered:
        return _fail(f"no registry answered at {', '.join(n.url for n in pool.nodes)}")
    print(table(["NODE", "ID", "IN_SYNC", "PEERS_UP", "INSTANCES", "SELF_PRESERVATION", "CONFLICTS"], rows))
    return 0


def _status_row(url: str, status: dict[str, Any]) -> list[Any]:
    peers = status.get("peers") or []
    preservation = _preservation_cell(status.get("self_preservation") or {})
    return [url, status.get("node_id", "?"), "yes" if status.get("in_sync") else "no",
            f"{sum(1 for p in peers if p.get('reachable'))}/{len(peers)}", status.get("instances", "?"),
            preservation, status.get("conflicts", "?")]


def _preservation_cell(sp: dict[str, Any]) -> str:
    """Engaged: since when and the earliest release; otherwise the renewals seen against those needed, when
    any are expected (a registry with no live lease has no figures worth showing)."""
    if sp.get("active"):
        return f"ACTIVE since {sp.get('since', '?')}, holds until {sp.get('holds_until', '?')}"
    state = "off" if sp.get("enabled", True) else "disabled"
    if sp.get("expected"):
        return f"{state} ({sp.get('renewals_in_window')} renewals seen, {sp.get('threshold')} needed)"
    return state
