"""The shell's errors, and how any apreg error becomes a JSON answer (`{"error", "detail"}`); body limits.

    ApregError (apreg/core/errors.py: the base, the direction, the HTTP status)
     ├── ClientError
     │    └── CodecError       a Eureka JSON/XML body or query the codec refuses (eureka/codec.py)   400
     ├── PeerError
     │    ├── WireError        a peer frame that is not valid protocol (peer/wire.py)                 400
     │    └── AuthError        a peer request unsigned, forged, replayed or out of window (peer/auth.py) 401
     └── PeerUnavailable       ours: a peer did not take our message (peer/transport.py)              503

Raisers import them from here (peer/ and eureka/ re-export them where callers have always found them).
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from apreg.core.errors import ApregError, ClientError, Fault, PeerError

log = logging.getLogger("apreg.http")


class CodecError(ClientError):
    """A client input that cannot be accepted: `error` is the slug, `detail` names the offending field."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail, error)

    def __str__(self) -> str:
        return f"{self.error}: {self.detail}"


class WireError(PeerError):
    """A peer frame that is not valid protocol: garbage, an unknown type, a missing or mistyped field."""

    error = "bad_peer_message"


class AuthError(PeerError):
    """The request is not signed, the signature is wrong, or its timestamp is outside the window (either way)."""

    error = "unauthorized"
    http_status = 401


class PeerUnavailable(ApregError):
    """The peer did not take the message (refused, timed out, or answered with an error)."""

    fault = Fault.OURS
    error = "peer_unavailable"
    http_status = 503

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def refusal(exc: ApregError) -> web.Response:
    """The answer to an apreg error: its own status, slug and detail."""
    return error_response(exc.http_status, exc.error, exc.detail)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, or 413 when it is over `limit`: refused by its declared length before reading, and a
    body that declares none is read only up to the limit (not up to the app's 64 MiB peer allowance). Kept on
    the request, so a middleware and the handler read it once."""
    cached = request.get(_BODY_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    request[_BODY_KEY] = bytes(body)
    return request[_BODY_KEY]  # type: ignore[no-any-return]


_BODY_KEY = "apreg.body"


def json_errors(count: Callable[[], None]) -> Middleware:
    """A middleware turning client errors and aiohttp's HTTP errors into JSON error bodies; `count` is called
    for every client error (4xx, not the node's own 5xx), so /v1/status can show them."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ClientError as exc:
            count()
            log.info("rejected %s %s: %s", request.method, request.path, exc)
            return refusal(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status < 500:
                count()
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        if 400 <= response.status < 500:
            count()
        return response

    return middleware
