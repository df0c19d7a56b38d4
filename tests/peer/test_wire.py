"""The peer wire codec: every message survives a round trip, and anything malformed is a WireError."""
from __future__ import annotations

import msgpack
import pytest

from apreg.core.clock import Timestamp
from apreg.core.instance import InstanceInfo, InstanceKey
from apreg.core.messages import Delta, Digest, DigestReply, Push, RenewalUpdate
from apreg.core.record import Record
from apreg.peer import wire

INFO = InstanceInfo(app="SVC", instance_id="i-1", host_name="h1", ip_addr="10.0.0.1", metadata={"zone": "z1"},
                    renewal_interval_s=30.0, vip_address="svc")
KEY = InstanceKey("SVC", "i-1")
STAMP = Timestamp(1_700_000_000_000, 2, "a~1")
RECORD = Record(KEY, INFO, {"a~1": 2, "b~1": 1}, STAMP)
TOMBSTONE = Record(InstanceKey("SVC", "i-2"), None, {"a~1": 3}, STAMP, STAMP)
DELTA = Delta("a~1", 4, 9, (RECORD, TOMBSTONE), (RenewalUpdate(KEY, STAMP, 1_500, 8),), (6, 7), (("c~1", 3),),
              ("b~1",))


def frame(kind: int, body: object) -> bytes:
    """A version 1 frame, as a version 1 node sends it (no range)."""
    return msgpack.packb({"v": 1, "t": kind, "b": body}, use_bin_type=True)


def raw_push(record: list[object]) -> bytes:
    return frame(1, ["a~1", 0, 1, [record], [], [], [], []])


def record_fields(**info_changes: object) -> list[object]:
    info = {**INFO.to_dict(), **info_changes}
    return ["SVC", "i-1", info, {"a~1": 1}, list(STAMP), [0, 0, ""]]


@pytest.mark.parametrize("version", wire.WIRE_VERSIONS)
@pytest.mark.parametrize("message", [Push(DELTA), Digest("b~1", 12, "a~1", 9, (("a~1", 9), ("c~1", 3))),
                                     DigestReply(DELTA, True, 5)])
def test_every_message_survives_a_round_trip(message: object, version: int) -> None:
    decoded = wire.decode_frame(wire.encode(message, version))  # type: ignore[arg-type]
    assert decoded.message == message and decoded.version == version
    assert decoded.peer_versions == wire.WIRE_VERSIONS


def test_a_decoded_record_equals_the_sent_one_field_for_field() -> None:
    decoded = wire.decode(wire.encode(Push(DELTA)))
    assert isinstance(decoded, Push)
    assert decoded.delta.records[0].info == INFO and dict(decoded.delta.records[0].vv) == {"a~1": 2, "b~1": 1}
    assert decoded.delta.records[1].is_tombstone


def test_values_that_repeat_across_instances_are_shared_after_decoding() -> None:
    data = raw_push(record_fields())
    first, second = wire.decode(data), wire.decode(data)  # two frames, decoded separately
    assert isinstance(first, Push) and isinstance(second, Push)
    a, b = first.delta.records[0], second.delta.records[0]
    assert a.info is not None and b.info is not None
    assert a.info.metadata is b.info.metadata and a.info.vip_address is b.info.vip_address and a.vv is b.vv


@pytest.mark.parametrize("data", [
    b"\xc1garbage", msgpack.packb([1, 2, 3]), msgpack.packb({"v": 99, "t": 1, "b": []}),
    frame(77, []), frame(1, ["a~1", 0, 1]), frame(2, ["b~1", "twelve", "a~1", 0, []]),
    frame(1, ["a~1", 0, 1, [], [], [], [], "not a list"]),
    raw_push(["SVC", "i-1", None, {"a~1": 0}, list(STAMP), list(STAMP)]),  # a counter must be positive
    raw_push(["SVC", "i-1", None, {"a~1": True}, list(STAMP), list(STAMP)]),
    raw_push(["SVC", "i-9", INFO.to_dict(), {"a~1": 1}, list(STAMP), list(STAMP)]),  # key differs from instance
    raw_push(record_fields(port="7001")),
    raw_push(record_fields(port_enabled=1)),
    raw_push(record_fields(last_dirty_timestamp=True)),
    raw_push(record_fields(status="SLEEPY")),
    raw_push(record_fields(metadata={"zone": 1})),
    raw_push(record_fields(host_name="")),
    raw_push(record_fields(app="svc")),
    raw_push(record_fields(colour="blue")),
    raw_push(record_fields(vip_address=["svc"])),
    raw_push(record_fields(renewal_interval_s=0.0001)),  # would be a 0 ms interval (see core.lease)
    raw_push(record_fields(lease_duration_s=-5.0)),
    raw_push(record_fields(lease_duration_s=float("nan"))),
], ids=lambda data: data[:24].hex())
def test_malformed_frames_are_wire_errors(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(data)


def test_a_float_field_takes_an_integer() -> None:
    decoded = wire.decode(raw_push(record_fields(renewal_interval_s=30)))
    assert isinstance(decoded, Push) and decoded.delta.records[0].info is not None
    assert decoded.delta.records[0].info.renewal_interval_s == 30


@pytest.mark.parametrize("version", [1, 2])
def test_the_senders_clock_rides_in_the_frame_where_older_nodes_ignore_it(version: int) -> None:
    """`Delta.clock_ms` is the frame's `c` (core/clock.py learns peers' offsets from it): every version carries
    it, a frame without it (an older sender) decodes as 0, and a mistyped one is refused."""
    from dataclasses import replace
    clocked = replace(DELTA, clock_ms=1_700_000_090_000)
    for message in (Push(clocked), DigestReply(clocked, True, 3)):
        data = wire.encode(message, version)
        assert msgpack.unpackb(data)["c"] == clocked.clock_ms
        assert wire.decode(data) == message
    assert "c" not in msgpack.unpackb(wire.encode(Push(DELTA), version))  # unknown: left out, as before
    tampered = msgpack.unpackb(wire.encode(Push(clocked), version))
    tampered["c"] = "soon"
    with pytest.raises(wire.WireError):
        wire.decode(msgpack.packb(tampered))
