"""Errors, sorted by whose fault they are, each with the HTTP status it maps to.

    ApregError              abstract: every apreg error says who is at fault and how to answer
     ├── ClientError        a client sent what we cannot accept: 4xx with a JSON body, counted
     ├── PeerError          another node sent something out of protocol: refused, counted and logged
     │    └── ClockSkewError   a remote timestamp further ahead of our wall clock than the guard allows
     └── (shell errors: apreg/server/errors.py, which maps any ApregError to a response)

The core raises only ClockSkewError, and catches it itself (the record is counted as rejected); the classes
above it live here so that the shell's errors share one base with the core's.
"""
from __future__ import annotations

from enum import Enum
from typing import ClassVar


class Fault(Enum):
    """Who made the mistake, which decides how it is answered and counted."""

    CLIENT = "client"  # the request: a 4xx the client must fix
    PEER = "peer"  # another node: refused and counted, never fatal to this node
    OURS = "ours"  # this node: a bug or a resource it lacks (5xx)


class ApregError(Exception):
    """Base of every apreg error; abstract (subclasses set `fault`, `http_status` and the `error` slug)."""

    fault: ClassVar[Fault]
    http_status: ClassVar[int]
    error: str = "error"  # a short slug for the JSON error body

    def __init__(self, detail: str, error: str | None = None) -> None:
        if type(self) in _ABSTRACT:
            raise TypeError(f"{type(self).__name__} is abstract: raise one of its subclasses")
        super().__init__(detail)
        self.detail = detail  # human text that names what was wrong
        if error is not None:
            self.error = error


class ClientError(ApregError):
    """Abstract: the client's fault."""

    fault = Fault.CLIENT
    http_status = 400


class PeerError(ApregError):
    """Abstract: another node's fault."""

    fault = Fault.PEER
    http_status = 400


class ClockSkewError(PeerError):
    """A remote timestamp is further ahead of our wall clock than `max_skew_ms` allows."""

    error = "clock_skew"


_ABSTRACT = (ApregError, ClientError, PeerError)
