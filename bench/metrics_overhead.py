#!/usr/bin/env python3
"""What the request-latency histogram costs per request: a node's timing middleware around a renew request
resolved by the node's own router, against the bare handler call (best of 5 runs of 200,000 calls each).

    python bench/metrics_overhead.py
"""
from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from apreg.server.app import build_app
from apreg.server.node import Node
from apreg.server.settings import NodeSettings

CALLS = 200_000


async def main() -> None:
    app = build_app(Node(NodeSettings()))
    timer = next(m for m in app.middlewares if getattr(m, "__name__", "") == "time_requests")
    request = make_mocked_request("PUT", "/eureka/apps/SVC/i-1?status=UP", app=app)
    request._match_info = await app.router.resolve(request)  # as aiohttp does before the middlewares run
    response = web.Response(status=200)

    async def handler(_: web.Request) -> web.StreamResponse:
        return response

    results = {}
    for label, call in (("bare handler", lambda: handler(request)),
                        ("through the timing middleware", lambda: timer(request, handler))):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(CALLS):
                await call()
            best = min(best, (time.perf_counter() - start) / CALLS)
        results[label] = best * 1e6
        print(f"{label}: {best * 1e6:.2f} us per request")
    print(f"added per request: {results['through the timing middleware'] - results['bare handler']:.2f} us")


if __name__ == "__main__":
    asyncio.run(main())
