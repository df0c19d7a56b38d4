"""A line-at-a-time Server-Sent Events parser (the WHATWG rules the watch stream needs), free of I/O."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None


class SseParser:
    """Feed decoded lines (with or without their line ending); get an event back at each blank line.

    Comment lines (":" heartbeats) and unknown fields yield nothing. The last event id persists across
    events, as the spec says, so it is what to send back as Last-Event-ID.
    """

    __slots__ = ("_event", "_data", "last_id")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data and not self._event:
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data), self.last_id)
        self._event = ""
        self._data = []
        return event
