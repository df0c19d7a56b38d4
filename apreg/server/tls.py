"""TLS for a node: the context it serves HTTPS with, and the one it reaches peers (and Java Eureka peers) with.

Clients and peers share one port, so with `--peer-mtls` the server asks every connection for a certificate but
does not demand one at the handshake (Eureka clients have none); the peer endpoints then refuse a request whose
connection presented no certificate signed by the CA (`peer_certified`). A node presents its own certificate
when it connects to peers, so two nodes given the same CA trust each other both ways.
"""
from __future__ import annotations

import ssl

from aiohttp import web

from .settings import NodeSettings


def server_context(settings: NodeSettings) -> ssl.SSLContext | None:
    """HTTPS for the node's port, or None when it serves plain HTTP."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_identity(context, settings)
    if settings.peer_mtls:
        _load_ca(context, settings.tls_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(settings: NodeSettings) -> ssl.SSLContext:
    """How this node checks the peers it connects to: against `--tls-ca` if given, else the system's CAs."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if settings.tls_ca:
        _load_ca(context, settings.tls_ca)
    if settings.tls_cert:
        _load_identity(context, settings)
    return context


def peer_certified(request: web.Request) -> bool:
    """Whether the request's connection presented a certificate the CA signed (verified at the handshake)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object is not None and bool(ssl_object.getpeercert())


def _load_identity(context: ssl.SSLContext, settings: NodeSettings) -> None:
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load --tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: "
                         f"{exc.strerror or exc}") from None


def _load_ca(context: ssl.SSLContext, path: str) -> None:
    try:
        context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load --tls-ca {path}: {exc.strerror or exc}") from None
