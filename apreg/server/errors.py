"""Client errors as JSON (`{"error", "detail"}`), body limits, and the middleware that applies them."""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from apreg.eureka.codec import CodecError

log = logging.getLogger("apreg.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


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
    """A middleware turning codec errors and aiohttp's HTTP errors into JSON error bodies; `count` is called
    for every client error (4xx, not the node's own 5xx), so /v1/status can show them."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except CodecError as exc:
            count()
            log.info("rejected %s %s: %s", request.method, request.path, exc)
            return error_response(400, exc.error, exc.detail)
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
