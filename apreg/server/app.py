"""Assembling a node's aiohttp application and running it until SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import replace
from typing import AsyncIterator, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from apreg.logs import ACCESS_LOGGER, NODE

from .collector import tune_garbage_collector
from .dashboard_api import DashboardApi
from .errors import Handler, json_errors
from .eureka_api import EurekaApi
from .health_api import HealthApi
from .metrics_api import MetricsApi
from .node import Node
from .peer_api import PeerApi
from .settings import NodeSettings
from .status_api import StatusApi
from .watch_api import WatchApi

log = logging.getLogger("apreg.node")


def build_app(node: Node) -> web.Application:
    """The HTTP face of a node; the node's timers start and stop with the app."""
    peer_api, metrics_api = PeerApi(node), MetricsApi(node)

    def count_reject() -> None:
        node.rejected.client += 1

    app = web.Application(middlewares=[name_requests(node.settings.name), metrics_api.time_requests,
                                       json_errors(count_reject), peer_api.authenticate],
                          client_max_size=node.settings.max_peer_body_bytes)
    for api in (EurekaApi(node), peer_api, StatusApi(node), WatchApi(node), HealthApi(node), metrics_api,
                DashboardApi(node)):
        api.add_routes(app)

    async def node_lifecycle(_: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.stop()

    app.cleanup_ctx.append(node_lifecycle)
    return app


def name_requests(name: str) -> Middleware:
    """Log lines written while serving a request name this node (`apreg cluster` runs several per process)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        NODE.set(name)
        return await handler(request)

    return middleware


def listen(settings: NodeSettings) -> tuple[socket.socket, NodeSettings]:
    """Bind the node's socket first, so that with port 0 the node knows (and names itself by) its real port."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    return sock, replace(settings, port=sock.getsockname()[1])


async def start_node(settings: NodeSettings) -> web.AppRunner:
    """Start one node listening; logs one line with its URL (the port actually bound)."""
    sock, settings = listen(settings)
    NODE.set(settings.name)
    access_log = logging.getLogger(ACCESS_LOGGER) if settings.access_log else None
    runner = web.AppRunner(build_app(Node(settings)), access_log=access_log, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    log.info("apreg node %s listening on %s (peers: %s)", settings.name, settings.url,
             ", ".join(settings.peers) or "none")
    return runner


async def run_nodes(all_settings: Sequence[NodeSettings]) -> None:
    """Run nodes until SIGTERM or SIGINT, then stop them cleanly."""
    tune_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runners = []
    try:
        for settings in all_settings:
            runners.append(await start_node(settings))
        NODE.set("-")  # what follows is the process's, not one node's
        await stop.wait()
    finally:
        log.info("apreg stopping %d node(s)", len(runners))
        for runner in runners:
            await runner.cleanup()
