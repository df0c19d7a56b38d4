"""HMAC authentication of peer messages: a signature over a timestamp and the body, refused outside a window.

Headers: `X-Apreg-Timestamp` (sender's Unix time in ms) and `X-Apreg-Signature` (hex HMAC-SHA256 of
"<timestamp>.<method> <path>." + body). The window bounds replays; a replayed *delta* would be harmless
anyway (merges are idempotent), but a bounded window keeps old captures from being useful at all.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

TIMESTAMP_HEADER = "X-Apreg-Timestamp"
SIGNATURE_HEADER = "X-Apreg-Signature"
DEFAULT_WINDOW_MS = 30_000


class AuthError(ValueError):
    """The request is not signed, the signature is wrong, or its timestamp is outside the window."""


def _mac(secret: bytes, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}.{method.upper()} {path}.".encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, path: str, body: bytes, now_ms: int) -> dict[str, str]:
    timestamp = str(now_ms)
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: _mac(secret, timestamp, method, path, body)}


def verify(secret: bytes, method: str, path: str, body: bytes, headers: Mapping[str, str],
           now_ms: int, window_ms: int = DEFAULT_WINDOW_MS) -> None:
    timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise AuthError("peer request is not signed")
    if not timestamp.isdigit() or abs(now_ms - int(timestamp)) > window_ms:
        raise AuthError("peer request timestamp is outside the accepted window")
    if not hmac.compare_digest(_mac(secret, timestamp, method, path, body), signature):
        raise AuthError("peer request signature does not match")
