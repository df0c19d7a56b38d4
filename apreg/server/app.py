"""Assembling a node's aiohttp application and running it until SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import replace
from typing import AsyncIterator, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from apreg.logs import ACCESS_LOGGER, NODE

from .client_auth import client_auth
from .collector import tune_garbage_collector
from .dashboard_api import DashboardApi
from .errors import Handler, json_errors
from .eureka_api import EurekaApi
from .eureka_peers_api import EurekaPeerApi
from .health_api import HealthApi
from .metrics_api import MetricsApi
from .node import Node
from .offset_clock import node_clock
from .peer_api import PeerApi
from .settings import NodeSettings
from .status_api import StatusApi
from .tls import server_context
from .users import Users
from .watch_api import WatchApi

log = logging.getLogger("apreg.node")
# A node restarted empty opens its port once it holds the registry (its first pull done, or failed), or after
# this long: meanwhile clients' connections are refused and they fail over, instead of reading an empty registry.
FIRST_PULL_WAIT_S = 10.0


def build_app(node: Node) -> web.Application:
    """The HTTP face of a node; the node's timers start and stop with the app."""
    peer_api, metrics_api = PeerApi(node), MetricsApi(node)

    def count_reject() -> None:
        node.rejected.client += 1

    middlewares = [name_requests(node.settings.name), metrics_api.time_requests, json_errors(count_reject),
                   peer_api.authenticate]
    if not (node.settings.secret or node.settings.peer_mtls):
        log.warning("node %s: peer endpoints are unauthenticated (no --secret, no --peer-mtls): anyone who can "
                    "reach this port can write records and tombstones into the cluster", node.settings.name)
    if node.settings.users:
        middlewares.insert(3, client_auth(node, Users.load(node.settings.users)))
    else:
        log.warning("node %s: no --users file, so every client may read and write the registry",
                    node.settings.name)
    app = web.Application(middlewares=middlewares, client_max_size=node.settings.max_peer_body_bytes)
    for api in (EurekaApi(node), EurekaPeerApi(node), peer_api, StatusApi(node), WatchApi(node), HealthApi(node),
                metrics_api, DashboardApi(node)):
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


async def start_node(settings: NodeSettings) -> tuple[web.AppRunner, Node]:
    """Start one node listening; logs one line with its URL (the port actually bound)."""
    sock, settings = listen(settings)
    NODE.set(settings.name)
    node = Node(settings, clock=node_clock())
    access_log = logging.getLogger(ACCESS_LOGGER) if settings.access_log else None
    # aiohttp's keep-alive timer starts when a connection opens and again after each answer, and closes the
    # connection if no complete request has arrived by then: the header timeout (aiohttp's default is an hour).
    runner = web.AppRunner(build_app(node), access_log=access_log, handle_signals=False,
                           keepalive_timeout=settings.header_timeout)
    await runner.setup()
    try:  # the node's timers started with the app: its first pull runs while the port still refuses clients
        await asyncio.wait_for(node.first_pull_done.wait(), FIRST_PULL_WAIT_S)
    except asyncio.TimeoutError:
        log.warning("node %s: the first pull from peers takes over %g s; serving meanwhile", settings.name,
                    FIRST_PULL_WAIT_S)
    await web.SockSite(runner, sock, ssl_context=server_context(settings)).start()
    log.info("apreg node %s listening on %s (peers: %s)", settings.name, settings.url,
             ", ".join(settings.peers) or "none")
    return runner, node


async def run_nodes(all_settings: Sequence[NodeSettings],
                    reload: Callable[[], NodeSettings] | None = None) -> None:
    """Run nodes until SIGTERM or SIGINT, then stop them cleanly. With `reload` (one node), SIGHUP reads the
    settings again and the node's peers follow them, without a restart."""
    tune_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started: list[tuple[web.AppRunner, Node]] = []
    try:
        for settings in all_settings:
            started.append(await start_node(settings))
        if reload is not None and len(started) == 1:
            loop.add_signal_handler(signal.SIGHUP, _reload_peers, started[0][1], reload)
        NODE.set("-")  # what follows is the process's, not one node's
        await stop.wait()
    finally:
        log.info("apreg stopping %d node(s)", len(started))
        for runner, _ in started:
            await runner.cleanup()


def _reload_peers(node: Node, reload: Callable[[], NodeSettings]) -> None:
    try:
        fresh = reload()
    except (ValueError, TypeError, OSError) as exc:
        log.error("node %s: SIGHUP: settings not reloaded, peers unchanged: %s", node.settings.name, exc)
        return
    node.settings = replace(node.settings, peers=fresh.peers, eureka_peers=fresh.eureka_peers)
    node.set_peers(fresh.peers)
    node.set_eureka_peers(fresh.eureka_peers)
