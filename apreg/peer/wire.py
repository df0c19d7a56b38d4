"""msgpack encoding of peer messages: the only module that knows the replication wire format.

A frame is a msgpack map {"v": version, "r": [lowest, highest], "t": message type, "b": body}. Message type
numbers come from `core.messages.MessageType`, which is append-only. Decoding validates every field before
anything reaches the core: a peer's bad message is refused with `WireError`, logged and counted, and changes
nothing.

Versions. `v` is the encoding of this frame's body, `r` the range of versions its sender reads and writes
(`WIRE_VERSIONS`; a frame without `r` comes from a version 1 node, which sent none and ignores it). A node
answers a request in the highest version both ends speak (`negotiate`) and pushes to a peer in the version that
peer's last answer allowed (version 1 until it has answered), so an older peer is always understood; a frame in
a version this node does not speak is refused with a WireError that names both ranges.

- Version 1: an instance is a map of its field names (`InstanceInfo.to_dict`); an unknown field is an error.
- Version 2: an instance is the list of its values in the fixed order of `INSTANCE_FIELDS` (no names: about
  half the bytes, a third of the unpacking, and encoding is one C call per instance). The rule for fields a
  peer does not know: fields are only ever appended to `INSTANCE_FIELDS`, each with a default meaning "not
  given"; a node drops trailing values beyond the fields it knows (a newer peer's fields, which therefore do
  not survive a hop through an older node), and a shorter list leaves the fields it does not reach at their
  defaults (an older peer's). Reordering or changing the meaning of a field needs a new version.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Any

import msgpack

from apreg.core.clock import ZERO, Timestamp
from apreg.core.instance import InstanceInfo, InstanceKey, shared_map
from apreg.core.messages import Delta, Digest, DigestReply, Message, MessageType, Push, RenewalUpdate
from apreg.core.record import Record
from apreg.server.errors import WireError

WIRE_VERSIONS = range(1, 3)  # the versions this node reads and writes
OLDEST, NEWEST = WIRE_VERSIONS[0], WIRE_VERSIONS[-1]
MAX_ITEMS = 100_000  # records or renewals in one frame

# Version 2's instance layout. Append only (see the module docstring); tests pin it against golden frames.
INSTANCE_FIELDS = ("app", "instance_id", "host_name", "ip_addr", "status", "overridden_status", "port",
                   "port_enabled", "secure_port", "secure_port_enabled", "country_id", "data_center_class",
                   "data_center_name", "data_center_metadata", "renewal_interval_s", "lease_duration_s",
                   "service_up_timestamp", "metadata", "app_group_name", "home_page_url", "status_page_url",
                   "health_check_url", "secure_health_check_url", "vip_address", "secure_vip_address", "sid",
                   "asg_name", "last_dirty_timestamp", "last_updated_timestamp", "registered_ms")
V1_FIELDS = frozenset(INSTANCE_FIELDS[:29])  # what a version 1 node knows: it refuses any other field
REQUIRED_FIELDS = 4  # app, instance id, host name, ip address: a shorter list is not an instance
MAX_INSTANCE_FIELDS = 64  # a newer peer's list may be longer than ours, but not without bound
_TIMESTAMPS_AT = tuple(INSTANCE_FIELDS.index(name) for name in ("last_updated_timestamp", "last_dirty_timestamp",
                                                                  "registered_ms"))
_values = attrgetter(*INSTANCE_FIELDS)  # one C call per instance; statuses pack as their (str) values
_ONLY_STR, _ONLY_INT = frozenset({str}), frozenset({int})  # exact types: a bool is no counter


@dataclass(frozen=True, slots=True)
class Frame:
    message: Message
    version: int  # the encoding of this frame
    peer_versions: range  # what its sender speaks


def negotiate(peer_versions: range) -> int:
    """The highest version both ends speak (a decoded frame's range always shares one: its own version)."""
    return min(NEWEST, peer_versions[-1])


def encode(message: Message, version: int = NEWEST) -> bytes:
    if version not in WIRE_VERSIONS:
        raise ValueError(f"wire version {version} is not one this node speaks")
    if isinstance(message, Push):
        body: Any = _delta(message.delta, version)
    elif isinstance(message, Digest):
        body = [message.sender, message.head, message.expect, message.since, [list(p) for p in message.holds]]
    else:
        body = [_delta(message.delta, version), message.more, message.your_watermark]
    frame = {"v": version, "r": [OLDEST, NEWEST], "t": int(message.type), "b": body}
    return msgpack.packb(frame, use_bin_type=True, default=_plain)


def _plain(value: object) -> object:
    """What msgpack cannot pack itself: the read-only maps instances and vectors share."""
    if isinstance(value, MappingProxyType):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(data: bytes) -> Message:
    return decode_frame(data).message


def decode_frame(data: bytes) -> Frame:
    try:
        frame = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise WireError(f"not a msgpack frame: {type(exc).__name__}") from None
    if not isinstance(frame, dict) or "v" not in frame or "b" not in frame:
        raise WireError("not an apreg peer frame (want a map with v, t, b)")
    version, peer_versions = frame["v"], _versions(frame)
    if version not in WIRE_VERSIONS:
        raise WireError(f"wire version {version!r} not supported: this node speaks {OLDEST}-{NEWEST}, the "
                        f"sender {_shown(peer_versions)}")
    try:
        kind = MessageType(frame.get("t", 0))
    except ValueError:
        raise WireError(f"unknown message type {frame.get('t')!r}") from None
    try:
        return Frame(_decode_body(kind, frame["b"], version), version, peer_versions)
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise WireError(f"malformed {kind.name} message: {exc}") from None


def _versions(frame: dict[str, Any]) -> range:
    """The sender's range: `r`, which must hold the frame's own version; a version 1 node sends none."""
    version, declared = frame["v"], frame.get("r")
    if type(version) is not int:
        raise WireError(f"wire version must be an integer, not {version!r}")
    if declared is None:
        return range(version, version + 1)
    lowest, highest = _fields(declared, 2)
    if not _int(lowest) <= version <= _int(highest):
        raise WireError(f"wire version {version} outside the sender's own range {declared!r}")
    return range(lowest, highest + 1)


def _shown(versions: range) -> str:
    return f"{versions[0]}-{versions[-1]}"


def _decode_body(kind: MessageType, body: Any, version: int) -> Message:
    if kind is MessageType.PUSH:
        return Push(_undelta(body, version))
    if kind is MessageType.DIGEST:
        sender, head, expect, since, holds = _fields(body, 5)
        return Digest(_str(sender), _int(head), _str(expect), _int(since), _pairs(holds))
    delta, more, watermark = _fields(body, 3)
    if not isinstance(more, bool):
        raise WireError("more must be a boolean")
    return DigestReply(_undelta(delta, version), more, _int(watermark))


def _delta(delta: Delta, version: int) -> list[Any]:
    instance = _v1_instance if version == 1 else _values
    return [delta.sender, delta.base, delta.upto,
            [[r.key.app, r.key.instance_id, None if r.info is None else instance(r.info), r.vv, r.stamp, r.epoch]
             for r in delta.records],
            [[u.key.app, u.key.instance_id, u.renewed, u.age_ms, u.seq] for u in delta.renewals],
            list(delta.record_seqs), [list(p) for p in delta.covered], list(delta.direct)]


def _v1_instance(info: InstanceInfo) -> dict[str, object]:
    return {name: value for name, value in info.to_dict().items() if name in V1_FIELDS}


def _undelta(body: Any, version: int) -> Delta:
    sender, base, upto, records, renewals, record_seqs, covered, direct = _fields(body, 8)
    if not isinstance(records, list) or not isinstance(renewals, list):
        raise WireError("records and renewals must be lists")
    if len(records) > MAX_ITEMS or len(renewals) > MAX_ITEMS:
        raise WireError("too many items in one frame")
    if not isinstance(record_seqs, list) or len(record_seqs) not in (0, len(records)):
        raise WireError("record_seqs must give one sequence per record")
    if not isinstance(direct, list) or len(direct) > MAX_ITEMS:
        raise WireError("direct must be a list of replica ids")
    shared: dict[object, Any] = {ZERO: ZERO}  # equal stamps and sequences in one frame share one object (memory)
    # Replica ids are interned: entries keep the sender's id, and a one-record push must not leave a copy per entry.
    return Delta(sys.intern(_str(sender)), _int(base), _int(upto),
                 tuple(_record(r, shared, version) for r in records), tuple(_renewal(u, shared) for u in renewals),
                 tuple(_seq(q, shared) for q in record_seqs), _pairs(covered),
                 tuple(sys.intern(_str(r)) for r in direct))


def _record(item: Any, shared: dict[object, Any], version: int) -> Record:
    app, instance_id, info, vv, stamp, epoch = _fields(item, 6)
    if not _is_vector(vv):
        raise WireError("version vector must map replica ids to positive counters")
    if info is None:
        key = InstanceKey(sys.intern(_str(app)), _str(instance_id))
        decoded = None
    else:
        decoded = InstanceInfo.from_dict(_map(info)) if version == 1 else InstanceInfo.from_values(
            _listed(info, shared))
        key = decoded.key  # shares the instance's strings
        if key != (app, instance_id):
            raise WireError("record key does not match its instance")
    shared[key] = key  # this record's renewal in the same frame takes the same key (see _renewal)
    return Record(key, decoded, shared_map(vv), _stamp(stamp, shared), _stamp(epoch, shared))


def _is_vector(vv: Any) -> bool:
    """Replica ids to positive 64-bit counters; C loops over the map, as this runs for every record."""
    return isinstance(vv, dict) and _ONLY_STR.issuperset(map(type, vv)) and _ONLY_INT.issuperset(
        map(type, vv.values())) and (not vv or 0 < min(vv.values()) <= max(vv.values()) < 2**63)


def _listed(values: Any, shared: dict[object, Any]) -> list[Any]:
    """A version 2 instance's values, as many as `InstanceInfo.from_values` takes (see the rule for unknown
    fields: a newer peer's trailing values drop out), its timestamps shared with the frame's equal ones."""
    if not isinstance(values, list) or not REQUIRED_FIELDS <= len(values) <= MAX_INSTANCE_FIELDS:
        raise WireError(f"an instance must list {REQUIRED_FIELDS} to {MAX_INSTANCE_FIELDS} values")
    if len(values) > len(INSTANCE_FIELDS):
        del values[len(INSTANCE_FIELDS):]
    for at in _TIMESTAMPS_AT:  # usually equal to the stamp's wall time: one int for both
        if at < len(values) and type(value := values[at]) is int:
            values[at] = shared.setdefault(value, value)
    return values


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
    """Equal stamps in one frame (a record's and its renewal's, every ZERO epoch) are checked once, shared."""
    wall, logical, replica = _fields(value, 3)
    found = shared.get((wall, logical, replica))
    if found is not None and type(wall) is int and type(logical) is int:  # equal is not enough: True == 1
        return found  # type: ignore[no-any-return]
    wall = _int(wall)
    stamp = Timestamp(shared.setdefault(wall, wall), _int(logical), sys.intern(_str(replica)))
    return shared.setdefault(stamp, stamp)  # type: ignore[no-any-return]


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
