"""HMAC authentication of peer messages: a signature over a timestamp and the body, refused outside a window.

Headers: `X-Apreg-Timestamp` (sender's Unix time in ms) and `X-Apreg-Signature` (hex HMAC-SHA256 of
"<timestamp>.<method> <path>." + body). The window bounds replays; a replayed *delta* would be harmless
anyway (merges are idempotent), but a bounded window keeps old captures from being useful at all. It is the
node's clock-skew guard (`--max-clock-skew`), on both sides of its clock: a peer whose timestamps the HLC accepts
must not be refused a signature, and one further off is refused either way.

Frames on a push stream (a WebSocket) are signed one by one, since after the signed handshake anyone on the path
could otherwise inject frames: an 8-byte big-endian timestamp (ms), the 32-byte raw HMAC over the same string with
method "WS" and the stream's path, then the body. The method keeps a frame's signature from passing for a POST.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Mapping

from apreg.server.errors import AuthError

TIMESTAMP_HEADER = "X-Apreg-Timestamp"
SIGNATURE_HEADER = "X-Apreg-Signature"
FRAME_METHOD = "WS"
_FRAME_HEAD = struct.Struct(">Q32s")  # timestamp ms, raw HMAC-SHA256


def wall_ms() -> int:
    """Unix time in ms: what signatures carry and are checked against (and the node's default clock)."""
    return time.time_ns() // 1_000_000


def _mac(secret: bytes, timestamp: str, method: str, path: str, body: bytes) -> bytes:
    mac = hmac.new(secret, f"{timestamp}.{method.upper()} {path}.".encode(), hashlib.sha256)
    mac.update(body)  # no copy of a large body
    return mac.digest()


def _check_time(timestamp: int, now_ms: int, window_ms: int) -> None:
    if abs(now_ms - timestamp) > window_ms:
        raise AuthError("peer request timestamp is outside the accepted window")


def sign(secret: bytes, method: str, path: str, body: bytes, now_ms: int) -> dict[str, str]:
    timestamp = str(now_ms)
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: _mac(secret, timestamp, method, path, body).hex()}


def verify(secret: bytes, method: str, path: str, body: bytes, headers: Mapping[str, str],
           now_ms: int, window_ms: int) -> None:
    timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise AuthError("peer request is not signed")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 19):
        raise AuthError("peer request timestamp is not a number")
    _check_time(int(timestamp), now_ms, window_ms)
    if not hmac.compare_digest(_mac(secret, timestamp, method, path, body).hex(), signature):
        raise AuthError("peer request signature does not match")


def sign_frame(secret: bytes, path: str, body: bytes, now_ms: int) -> bytes:
    """One push-stream frame: timestamp, HMAC, body."""
    return _FRAME_HEAD.pack(now_ms, _mac(secret, str(now_ms), FRAME_METHOD, path, body)) + body


def verify_frame(secret: bytes, path: str, frame: bytes, now_ms: int, window_ms: int) -> bytes:
    """The body of a signed frame; raises AuthError when it is unsigned, stale or forged."""
    if len(frame) < _FRAME_HEAD.size:
        raise AuthError("stream frame is too short to be signed")
    timestamp, signature = _FRAME_HEAD.unpack_from(frame)
    body = frame[_FRAME_HEAD.size:]
    _check_time(timestamp, now_ms, window_ms)
    if not hmac.compare_digest(_mac(secret, str(timestamp), FRAME_METHOD, path, body), signature):
        raise AuthError("stream frame signature does not match")
    return body


@dataclass(slots=True)
class ReplayGuard:
    """Signatures seen within the window, so a captured signed request cannot be played again while its
    timestamp is still accepted (a replayed digest would read the whole registry). Pushes are safe to replay
    (merges are idempotent) but cost work; digests are not. Older than the window, a replay fails the time check."""

    window_ms: int
    limit: int = 200_000  # signatures kept; past it the oldest go (their timestamps are nearly out anyway)
    _seen: set[str] = field(default_factory=set)
    _order: deque[tuple[int, str]] = field(default_factory=deque)

    def first_use(self, signature: str, timestamp_ms: int, now_ms: int) -> bool:
        """True the first time a signature is seen; False for a replay."""
        while self._order and (self._order[0][0] < now_ms - 2 * self.window_ms or len(self._order) >= self.limit):
            self._seen.discard(self._order.popleft()[1])
        if signature in self._seen:
            return False
        self._seen.add(signature)
        self._order.append((timestamp_ms, signature))
        return True
