"""`--ack-replicas K`: a client's write is acknowledged once K peers hold it, or answered 503 after a bound.

A peer holds a write once its watermark of this node's change log reaches the write's position: every
anti-entropy reply carries it (`DigestReply.your_watermark`, the prefix of our log the peer holds all of), and
a later change of the same key counts too (it supersedes the write). While writes wait, the node asks the peers
that do not hold them yet for that reply, in rounds right behind the eager push: a digest, which costs a
constant when the two are in sync. A write that times out is not undone: it stays applied here and still
replicates; the 503 says only that K peers did not confirm it in time (the client may retry: a registration is
idempotent).
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Iterable

from aiohttp import web

PROBE_PAUSE_S = 0.002  # between rounds of digests while writes wait: a busy loop would starve the pushes


class ReplicaAcks:
    def __init__(self, needed: int, timeout_s: float, probe: Callable[[str], Awaitable[None]],
                 peers: Callable[[], Iterable[str]]) -> None:
        self.needed, self.timeout_s = needed, timeout_s
        self._probe, self._peers = probe, peers
        self.marks: dict[str, int] = {}  # peer URL -> its watermark of our log, as its latest reply said
        self._waiting: dict[asyncio.Future[None], int] = {}  # each waiting write's log position
        self._prober: asyncio.Task[None] | None = None

    def held(self, peer: str, watermark: int) -> None:
        """A peer's reply said how far it holds our log: release the writes that enough peers now hold."""
        if watermark <= self.marks.get(peer, 0):
            return
        self.marks[peer] = watermark
        for future, seq in list(self._waiting.items()):
            if not future.done() and self.holders(seq) >= self.needed:
                future.set_result(None)

    def holders(self, seq: int) -> int:
        """Current peers holding our log up to `seq` (a peer removed meanwhile no longer counts)."""
        return sum(1 for peer in self._peers() if self.marks.get(peer, 0) >= seq)

    async def wait(self, seq: int) -> None:
        """Returns once `needed` peers hold our log up to `seq`; 503 (HTTPServiceUnavailable) after the bound."""
        if self.holders(seq) >= self.needed:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting[future] = seq
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe_rounds())
        try:
            await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            held = self.holders(seq)
            raise web.HTTPServiceUnavailable(
                reason="Not Replicated", text=f"the write is applied here, but {held} of the {self.needed} peers "
                f"needed (--ack-replicas) confirmed it within {self.timeout_s:g} s; it will still replicate"
            ) from None
        finally:
            del self._waiting[future]

    async def _probe_rounds(self) -> None:
        """Ask the peers that do not yet hold the latest waiting write, round after round, while writes wait."""
        peers = set(self._peers())
        self.marks = {peer: mark for peer, mark in self.marks.items() if peer in peers}  # removed peers: released
        while self._waiting:
            latest = max(self._waiting.values())
            await asyncio.gather(*(self._probe(peer) for peer in self._peers() if self.marks.get(peer, 0) < latest))
            await asyncio.sleep(PROBE_PAUSE_S)
