from __future__ import annotations

import socket
from typing import AsyncIterator

import pytest

from .fake_registry import FakeRegistry


_held: list[socket.socket] = []  # bound for the whole session, never listening


def refused_port() -> int:
    """A port that refuses connections, and stays so: it is held bound (never listening) until the tests end,
    so no other process can be given it meanwhile, as it could a port bound once and released."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return int(sock.getsockname()[1])


def free_port() -> int:
    """A port free right now, for a child process that binds it itself (see test_client_cluster for what a
    collision then costs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
