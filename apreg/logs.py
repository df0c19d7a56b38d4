"""Logging for `apreg serve` / `apreg cluster`: text or JSON lines, each naming the node that logged it.

`apreg cluster` runs several nodes in one process, so the node's id travels in a context variable: a node sets it
before starting its timers (their tasks inherit it) and the HTTP layer sets it for every request it serves.
"""
from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TextIO

NODE: ContextVar[str] = ContextVar("apreg_node", default="-")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(node)s] %(name)s: %(message)s"
ACCESS_LOGGER = "apreg.access"


class NodeFilter(logging.Filter):
    """Stamps every record with the node it was logged for."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = NODE.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, node, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "node": getattr(record, "node", "-"), "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text", stream: TextIO = sys.stderr) -> None:
    """Replace the root logger's handlers with one writing `fmt` lines to `stream`."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(NodeFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
