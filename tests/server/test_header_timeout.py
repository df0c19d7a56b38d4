"""Half-open connections cannot lock clients out: a node at its file-descriptor limit, held by connections that
never finish their request headers, drops them after --header-timeout and serves a new client."""
from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from .harness import eventually, free_port

FD_LIMIT = 64  # the node's own (a fresh node holds about 10)
IDLE = 90  # more than it can hold


@pytest.mark.slow
async def test_connections_that_never_finish_their_headers_are_dropped_and_a_new_client_is_served() -> None:
    port = free_port()

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    node = subprocess.Popen([sys.executable, "-m", "apreg", "serve", "--port", str(port), "--header-timeout", "0.5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=low_fd_limit)
    idle: list[socket.socket] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            assert await eventually(lambda: _serves(session, port), 15)
            for _ in range(IDLE):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET /eureka/apps HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the blank line never comes
                idle.append(sock)
            start = time.monotonic()
            async with session.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}) as r:
                assert r.status == 200
            served_after = time.monotonic() - start
        for sock in idle:  # each was closed by the node (EOF), none answered
            sock.settimeout(10)
            try:
                assert sock.recv(1024) == b""
            except ConnectionResetError:
                pass
        assert served_after < 15
    finally:
        for sock in idle:
            sock.close()
        node.terminate()
        node.wait(10)


async def _serves(session: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        await asyncio.sleep(0.1)
        return False
