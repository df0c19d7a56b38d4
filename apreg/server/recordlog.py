"""One file of framed records: appended whole, read back, with a torn tail told apart from good records.

A file starts with `MAGIC`; each record is its payload's length and CRC-32 (two little-endian 32-bit integers)
and then the payload. A process killed in the middle of an append leaves a last record that is short or fails its
checksum: `read` stops there and says how many bytes follow the last whole record, so the caller can drop them
(and say so) rather than refuse to start. A damaged record in the middle looks the same and ends the file there:
its length cannot be trusted to find the next one.
"""
from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Iterable

MAGIC = b"apreg\x00d1"  # data-dir format 1
HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload
MAX_PAYLOAD_BYTES = 1 << 30  # a longer "length" is damage, not a record


class FormatError(ValueError):
    """Not a file of this format at all (another file, or damage to its start)."""


@dataclass(frozen=True, slots=True)
class Scan:
    payloads: list[bytes]
    valid_bytes: int  # the file up to the end of its last whole record
    torn_bytes: int  # what follows: a record cut short or damaged (0 for a clean file)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read(path: str) -> Scan:
    """Every whole record of the file at `path`; a file that ends inside its magic is empty and torn."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.startswith(MAGIC):
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            return Scan([], 0, len(data))  # created, and the process died before the magic was written
        raise FormatError("it does not start as an apreg data file")
    payloads, at = [], len(MAGIC)
    while at + HEADER.size <= len(data):
        length, checksum = HEADER.unpack_from(data, at)
        end = at + HEADER.size + length
        if length > MAX_PAYLOAD_BYTES or end > len(data):
            break
        payload = data[at + HEADER.size:end]
        if zlib.crc32(payload) != checksum:
            break
        payloads.append(payload)
        at = end
    return Scan(payloads, at, len(data) - at)


class Appender:
    """Appends records to one file; `valid_bytes` > 0 continues a file (cutting off a torn tail first)."""

    def __init__(self, path: str, valid_bytes: int = 0) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)
        os.ftruncate(self.fd, valid_bytes)
        self.size = valid_bytes
        if not valid_bytes:
            self._write(MAGIC)

    def append(self, payload: bytes) -> None:
        """One record, or none: a write that fails part way (a full disk) is cut off again, so the records
        appended after it stay readable."""
        try:
            self._write(frame(payload))
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(data)


def write_file(path: str, payloads: Iterable[bytes]) -> int:
    """A whole file written and flushed to disk under a temporary name, then renamed into place: readers see
    the old file or the complete new one. Returns its size."""
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        handle.write(MAGIC)
        for payload in payloads:
            handle.write(frame(payload))
        handle.flush()
        os.fsync(handle.fileno())
        size = handle.tell()
    os.replace(temporary, path)
    sync_directory(os.path.dirname(path) or ".")
    return size


def sync_directory(path: str) -> None:
    """Make a file's creation, rename or removal in `path` durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
