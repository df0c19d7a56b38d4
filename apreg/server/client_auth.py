"""The middleware that asks clients for their user and checks the role a request needs (see users.py)."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Middleware

from .errors import Handler, error_response
from .node import Node
from .users import User, Users, basic_credentials, required_role

log = logging.getLogger("apreg.http")
USER = web.RequestKey("user", User)  # who made the request, once authenticated (the dashboard asks)


def client_auth(node: Node, users: Users) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        needed = required_role(request.method, request.path)
        if needed is None:
            return await handler(request)
        credentials = basic_credentials(request.headers.get("Authorization"))
        user = users.remembered(*credentials) if credentials else None
        if user is None and credentials is not None:
            user = await asyncio.to_thread(users.verify, *credentials)
        if user is None:
            node.rejected.client_auth += 1
            log.info("refused %s %s from %s: %s", request.method, request.path, request.remote,
                     "wrong user or password" if credentials else "no credentials")
            response = error_response(401, "unauthorized", "this registry needs a user and password (HTTP Basic)")
            response.headers["WWW-Authenticate"] = 'Basic realm="apreg", charset="UTF-8"'
            return response
        if user.role < needed:
            node.rejected.client_auth += 1
            return error_response(403, "forbidden", f"user {user.name!r} has role {user.role.name.lower()}; "
                                                    f"this request needs {needed.name.lower()}")
        request[USER] = user
        return await handler(request)

    return middleware
