"""NodePool.request on its own: failover in order past refused and failing nodes, then sticking to the one that
answered (the client's other tests reach failover only through its watch and renewal loops)."""
from __future__ import annotations

import time
from typing import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from apreg.client import RegistryUnavailable
from apreg.client._http import ACCEPT_JSON, NodePool

from .conftest import refused_port
from .fake_registry import FakeRegistry, instance
from .helpers import FAST


@pytest.fixture
def refused() -> str:
    return f"http://127.0.0.1:{refused_port()}"


@pytest.fixture
async def failing() -> AsyncIterator[str]:
    """A node that answers 503 to everything, as one that cannot serve yet does."""
    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unavailable)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_a_request_fails_over_in_order_and_then_goes_first_to_the_node_that_answered(
        fake: FakeRegistry, refused: str, failing: str) -> None:
    fake.put(instance("cart", "c-1"))
    pool = NodePool([refused, failing, fake.url], FAST, time.monotonic)
    try:
        reply = await pool.request("GET", "/eureka/apps", headers=ACCEPT_JSON)
        assert (reply.status, reply.node) == (200, fake.url)
        assert reply.json()["applications"]["application"][0]["instance"][0]["instanceId"] == "c-1"
        assert [n.url for n in pool.order()] == [fake.url, refused, failing]
        await pool.request("GET", "/eureka/apps", headers=ACCEPT_JSON)
        assert len(fake.calls("GET", "/eureka/apps")) == 2  # the second went to the good node directly
    finally:
        await pool.close()


async def test_when_no_node_answers_every_failure_is_reported(refused: str, failing: str) -> None:
    pool = NodePool([refused, failing], FAST, time.monotonic)
    try:
        with pytest.raises(RegistryUnavailable) as none:
            await pool.request("GET", "/eureka/apps")
        assert [f.split(": ")[0] for f in none.value.failures] == [refused, failing]
        assert "HTTP 503" in none.value.failures[1]
    finally:
        await pool.close()
