"""Errors the client raises; all derive from RegistryError so callers can catch one type."""
from __future__ import annotations


class RegistryError(Exception):
    """Base class of every client error."""


class RegistryUnavailable(RegistryError):
    """No configured registry node answered (refused, timed out, 5xx, or circuit open)."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__("no registry node answered: " + ("; ".join(failures) or "every circuit is open"))


class InstanceNotFound(RegistryError):
    """The registry does not know the instance (HTTP 404)."""


class RequestRejected(RegistryError):
    """The registry refused the request (an unexpected 4xx); `status` and `detail` say why."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"registry answered {status}: {detail}")
