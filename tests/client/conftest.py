from __future__ import annotations

import socket
from typing import AsyncIterator

import pytest

from .fake_registry import FakeRegistry


def free_port() -> int:
    """A port nothing listens on (so connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def fake() -> AsyncIterator[FakeRegistry]:
    node = await FakeRegistry().start()
    yield node
    await node.stop()


@pytest.fixture
async def fake2() -> AsyncIterator[FakeRegistry]:
    node = await FakeRegistry().start()
    yield node
    await node.stop()
