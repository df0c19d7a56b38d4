"""msgpack encoding of peer messages: the only module that knows the replication wire format.

A frame is a msgpack map {"v": WIRE_VERSION, "t": message type, "b": body}. Message type numbers come from
`core.messages.MessageType`, which is append-only. Decoding validates every field before anything reaches the
core: a peer's bad message is refused with `WireError`, logged and counted, and changes nothing.
"""
from __future__ import annotations

import sys
from typing import Any

import msgpack

from apreg.core.clock import ZERO, Timestamp
from apreg.core.instance import InstanceInfo, InstanceKey, shared_map
from apreg.core.messages import Delta, Digest, DigestReply, Message, MessageType, Push, RenewalUpdate
from apreg.core.record import Record

WIRE_VERSION = 1
MAX_ITEMS = 100_000  # records or renewals in one frame
_TIMESTAMP_FIELDS = ("last_updated_timestamp", "last_dirty_timestamp")


class WireError(ValueError):
    """A peer frame that is not valid protocol: garbage, an unknown type, a missing or mistyped field."""


def encode(message: Message) -> bytes:
    if isinstance(message, Push):
        body: Any = _delta(message.delta)
    elif isinstance(message, Digest):
        body = [message.sender, message.head, message.expect, message.since, [list(p) for p in message.holds]]
    else:
        body = [_delta(message.delta), message.more, message.your_watermark]
    return msgpack.packb({"v": WIRE_VERSION, "t": int(message.type), "b": body}, use_bin_type=True)


def decode(data: bytes) -> Message:
    try:
        frame = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise WireError(f"not a msgpack frame: {type(exc).__name__}") from None
    if not isinstance(frame, dict) or frame.get("v") != WIRE_VERSION or "b" not in frame:
        raise WireError("not an apreg peer frame (want a map with v, t, b)")
    try:
        kind = MessageType(frame.get("t", 0))
    except ValueError:
        raise WireError(f"unknown message type {frame.get('t')!r}") from None
    try:
        return _decode_body(kind, frame["b"])
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise WireError(f"malformed {kind.name} message: {exc}") from None


def _decode_body(kind: MessageType, body: Any) -> Message:
    if kind is MessageType.PUSH:
        return Push(_undelta(body))
    if kind is MessageType.DIGEST:
        sender, head, expect, since, holds = _fields(body, 5)
        return Digest(_str(sender), _int(head), _str(expect), _int(since), _pairs(holds))
    delta, more, watermark = _fields(body, 3)
    if not isinstance(more, bool):
        raise WireError("more must be a boolean")
    return DigestReply(_undelta(delta), more, _int(watermark))


def _delta(delta: Delta) -> list[Any]:
    return [delta.sender, delta.base, delta.upto,
            [[r.key.app, r.key.instance_id, None if r.info is None else r.info.to_dict(), dict(r.vv), list(r.stamp),
              list(r.epoch)] for r in delta.records],
            [[u.key.app, u.key.instance_id, list(u.renewed), u.age_ms, u.seq] for u in delta.renewals],
            list(delta.record_seqs), [list(p) for p in delta.covered], list(delta.direct)]


def _undelta(body: Any) -> Delta:
    sender, base, upto, records, renewals, record_seqs, covered, direct = _fields(body, 8)
    if not isinstance(records, list) or not isinstance(renewals, list):
        raise WireError("records and renewals must be lists")
    if len(records) > MAX_ITEMS or len(renewals) > MAX_ITEMS:
        raise WireError("too many items in one frame")
    if not isinstance(record_seqs, list) or len(record_seqs) not in (0, len(records)):
        raise WireError("record_seqs must give one sequence per record")
    if not isinstance(direct, list) or len(direct) > MAX_ITEMS:
        raise WireError("direct must be a list of replica ids")
    shared: dict[object, Any] = {}  # equal stamps and sequences in one frame share one object (memory)
    # Replica ids are interned: entries keep the sender's id, and a one-record push must not leave a copy per entry.
    return Delta(sys.intern(_str(sender)), _int(base), _int(upto), tuple(_record(r, shared) for r in records),
                 tuple(_renewal(u, shared) for u in renewals), tuple(_seq(q, shared) for q in record_seqs),
                 _pairs(covered), tuple(sys.intern(_str(r)) for r in direct))


def _record(item: Any, shared: dict[object, Any]) -> Record:
    app, instance_id, info, vv, stamp, epoch = _fields(item, 6)
    if not isinstance(vv, dict) or not all(isinstance(k, str) and _int(v) > 0 for k, v in vv.items()):
        raise WireError("version vector must map replica ids to positive counters")
    if info is None:
        key = InstanceKey(sys.intern(_str(app)), _str(instance_id))
        decoded = None
    else:
        raw = _map(info)
        for name in _TIMESTAMP_FIELDS:  # usually equal to the stamp's wall time: one int for both
            value = raw.get(name)
            if type(value) is int:
                raw[name] = shared.setdefault(value, value)
        decoded = InstanceInfo.from_dict(raw)
        key = decoded.key  # shares the instance's strings
        if key != (app, instance_id):
            raise WireError("record key does not match its instance")
    shared[key] = key  # this record's renewal in the same frame takes the same key (see _renewal)
    return Record(key, decoded, shared_map(vv), _stamp(stamp, shared), _stamp(epoch, shared))


def _renewal(item: Any, shared: dict[object, Any]) -> RenewalUpdate:
    app, instance_id, stamp, age, seq = _fields(item, 5)
    named = (_str(app), _str(instance_id))
    # A registration's renewal arrives with its record, and may create the key's entry: it takes the record's key
    # object, whose strings the instance shares, rather than keep copies of its own.
    key = shared.get(named) or InstanceKey(sys.intern(named[0]), named[1])
    return RenewalUpdate(key, _stamp(stamp, shared), _int(age), _seq(seq, shared))


def _pairs(value: Any) -> tuple[tuple[str, int], ...]:
    """A list of [replica id, sequence] pairs (watermarks, covered ranges)."""
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise WireError("expected a list of [replica, sequence] pairs")
    return tuple((_str(replica), _int(seq)) for replica, seq in (_fields(p, 2) for p in value))


def _stamp(value: Any, shared: dict[object, Any]) -> Timestamp:
    wall, logical, replica = _fields(value, 3)
    wall = _int(wall)
    stamp = Timestamp(shared.setdefault(wall, wall), _int(logical), sys.intern(_str(replica)))
    return ZERO if stamp == ZERO else shared.setdefault(stamp, stamp)


def _seq(value: Any, shared: dict[object, Any]) -> int:
    return shared.setdefault(_int(value), value)


def _fields(value: Any, count: int) -> list[Any]:
    if not isinstance(value, list) or len(value) != count:
        raise WireError(f"expected a list of {count} fields")
    return value


def _map(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError("expected a map")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise WireError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < -(2**63) or value >= 2**63:
        raise WireError(f"expected an integer, got {type(value).__name__}")
    return value
