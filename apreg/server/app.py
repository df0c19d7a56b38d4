"""Assembling a node's aiohttp application and running it until SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import AsyncIterator, Sequence

from aiohttp import web

from .collector import tune_garbage_collector
from .errors import json_errors
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

    app = web.Application(middlewares=[metrics_api.time_requests, json_errors(count_reject), peer_api.authenticate],
                          client_max_size=node.settings.max_peer_body_bytes)
    for api in (EurekaApi(node), peer_api, StatusApi(node), WatchApi(node), HealthApi(node), metrics_api):
        api.add_routes(app)

    async def node_lifecycle(_: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.stop()

    app.cleanup_ctx.append(node_lifecycle)
    return app


async def start_node(settings: NodeSettings) -> web.AppRunner:
    """Start one node listening; logs one line with its URL."""
    runner = web.AppRunner(build_app(Node(settings)), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port, reuse_address=True).start()
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
        await stop.wait()
    finally:
        log.info("apreg stopping %d node(s)", len(runners))
        for runner in runners:
            await runner.cleanup()
