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
    """The request body, or 413 when it is over `limit` (checked before reading when the length is declared)."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.read()
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


def json_errors(count: Callable[[], None]) -> Middleware:
    """A middleware turning codec errors and aiohttp's HTTP errors into JSON error bodies; `count` is called
    for every client error (4xx), so /v1/status can show them."""

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
            count()
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        if response.status >= 400:
            count()
        return response

    return middleware
