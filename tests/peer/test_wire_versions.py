"""Wire versions: golden frames pin each version's bytes, old peers are understood, unknown fields follow the rule.

The golden frames are fixed bytes: if one of these tests fails, the wire changed, and peers of the other
version may no longer understand this one. Change the bytes only together with a new version, or when a field
is appended to version 2's instance layout (the rule for unknown fields); the previous layout's frame then stays
here, and must still decode.
"""
from __future__ import annotations

import dataclasses

import msgpack
import pytest

from apreg.core.clock import Timestamp
from apreg.core.instance import FIELD_NAMES, InstanceInfo, InstanceKey
from apreg.core.messages import Delta, Digest, Push, RenewalUpdate
from apreg.core.record import Record
from apreg.peer import wire
from tests.server.harness import LocalCluster, eventually, instance_body

INFO = InstanceInfo(app="SVC", instance_id="i-1", host_name="h1", ip_addr="10.0.0.1", metadata={"zone": "z1"},
                    renewal_interval_s=30.0, vip_address="svc", home_page_url="http://h1:7001/")
KEY = InstanceKey("SVC", "i-1")
STAMP = Timestamp(1_700_000_000_000, 2, "a~1")
DELTA = Delta("a~1", 4, 9, (Record(KEY, INFO, {"a~1": 2}, STAMP),
                            Record(InstanceKey("SVC", "i-2"), None, {"a~1": 3}, STAMP, STAMP)),
              (RenewalUpdate(KEY, STAMP, 1_500, 8),), (6, 7), (("c~1", 3),), ("b~1",))
DIGEST = Digest("b~1", 12, "a~1", 9, (("a~1", 9),))

GOLDEN_PUSH_V2 = bytes.fromhex(
    "84a17602a172920102a17401a16298a3617e3104099296a3535643a3692d31dc001ea3535643a3692d31a26831a831302e30"
    "2e302e31a25550a7554e4b4e4f574ecd1b59c3cd1b5ac201d936636f6d2e6e6574666c69782e617070696e666f2e496e7374"
    "616e6365496e666f2444656661756c744461746143656e746572496e666fa54d794f776e80cb403e000000000000c00081a4"
    "7a6f6e65a27a31c0af687474703a2f2f68313a373030312fc0c0c0a3737663c0c0c000000081a3617e310293cf0000018bcf"
    "e5680002a3617e31930000a096a3535643a3692d32c081a3617e310393cf0000018bcfe5680002a3617e3193cf0000018bcf"
    "e5680002a3617e319195a3535643a3692d3193cf0000018bcfe5680002a3617e31cd05dc089206079192a3637e310391a362"
    "7e31"
)
# The same push from a version 2 node of the first instance layout (before registered_ms was appended).
GOLDEN_PUSH_V2_FIRST_LAYOUT = bytes.fromhex(
    "84a17602a172920102a17401a16298a3617e3104099296a3535643a3692d31dc001da3535643a3692d31a26831a831302e30"
    "2e302e31a25550a7554e4b4e4f574ecd1b59c3cd1b5ac201d936636f6d2e6e6574666c69782e617070696e666f2e496e7374"
    "616e6365496e666f2444656661756c744461746143656e746572496e666fa54d794f776e80cb403e000000000000c00081a4"
    "7a6f6e65a27a31c0af687474703a2f2f68313a373030312fc0c0c0a3737663c0c0c0000081a3617e310293cf0000018bcfe5"
    "680002a3617e31930000a096a3535643a3692d32c081a3617e310393cf0000018bcfe5680002a3617e3193cf0000018bcfe5"
    "680002a3617e319195a3535643a3692d3193cf0000018bcfe5680002a3617e31cd05dc089206079192a3637e310391a3627e"
    "31")
GOLDEN_DIGEST_V2 = bytes.fromhex("84a17602a172920102a17402a16295a3627e310ca3617e31099192a3617e3109")
# The same push as a version 1 node (before version 2 existed) encoded it: no range, instances as field maps.
GOLDEN_PUSH_FROM_V1_NODE = bytes.fromhex(
    "83a17601a17401a16298a3617e3104099296a3535643a3692d31de001da3617070a3535643ab696e7374616e63655f6964a3"
    "692d31a9686f73745f6e616d65a26831a769705f61646472a831302e302e302e31a6737461747573a25550b16f7665727269"
    "6464656e5f737461747573a7554e4b4e4f574ea4706f7274cd1b59ac706f72745f656e61626c6564c3ab7365637572655f70"
    "6f7274cd1b5ab37365637572655f706f72745f656e61626c6564c2aa636f756e7472795f696401b1646174615f63656e7465"
    "725f636c617373d936636f6d2e6e6574666c69782e617070696e666f2e496e7374616e6365496e666f2444656661756c7444"
    "61746143656e746572496e666fb0646174615f63656e7465725f6e616d65a54d794f776eb4646174615f63656e7465725f6d"
    "6574616461746180b272656e6577616c5f696e74657276616c5f73cb403e000000000000b06c656173655f6475726174696f"
    "6e5f73c0b4736572766963655f75705f74696d657374616d7000a86d6574616461746181a47a6f6e65a27a31ae6170705f67"
    "726f75705f6e616d65c0ad686f6d655f706167655f75726caf687474703a2f2f68313a373030312faf7374617475735f7061"
    "67655f75726cc0b06865616c74685f636865636b5f75726cc0b77365637572655f6865616c74685f636865636b5f75726cc0"
    "ab7669705f61646472657373a3737663b27365637572655f7669705f61646472657373c0a3736964c0a86173675f6e616d65"
    "c0b46c6173745f64697274795f74696d657374616d7000b66c6173745f757064617465645f74696d657374616d700081a361"
    "7e310293cf0000018bcfe5680002a3617e31930000a096a3535643a3692d32c081a3617e310393cf0000018bcfe5680002a3"
    "617e3193cf0000018bcfe5680002a3617e319195a3535643a3692d3193cf0000018bcfe5680002a3617e31cd05dc08920607"
    "9192a3637e310391a3627e31")


@pytest.mark.parametrize(("message", "golden"), [(Push(DELTA), GOLDEN_PUSH_V2), (DIGEST, GOLDEN_DIGEST_V2)])
def test_version_2_frames_match_the_golden_bytes(message: object, golden: bytes) -> None:
    assert wire.encode(message, 2) == golden  # type: ignore[arg-type]
    frame = wire.decode_frame(golden)
    assert frame.message == message and frame.version == 2 and frame.peer_versions == range(1, 3)


def test_a_version_2_node_of_the_first_layout_is_understood() -> None:
    """Its instances lack the appended registered_ms: they take its default, as the rule for fields says."""
    frame = wire.decode_frame(GOLDEN_PUSH_V2_FIRST_LAYOUT)
    assert frame.message == Push(DELTA) and frame.version == 2


def test_a_version_1_node_is_understood_and_answered_in_version_1() -> None:
    frame = wire.decode_frame(GOLDEN_PUSH_FROM_V1_NODE)
    assert frame.message == Push(DELTA) and frame.peer_versions == range(1, 2)
    assert wire.negotiate(frame.peer_versions) == 1


def test_version_1_frames_are_what_version_1_nodes_sent_plus_a_range_they_ignore() -> None:
    ours = msgpack.unpackb(wire.encode(Push(DELTA), 1))
    assert ours.pop("r") == [1, 2]
    assert ours == msgpack.unpackb(GOLDEN_PUSH_FROM_V1_NODE)  # a version 1 node reads only v, t and b


def test_negotiation_picks_the_highest_common_version() -> None:
    assert wire.negotiate(range(1, 2)) == 1
    assert wire.negotiate(range(1, 3)) == 2
    assert wire.negotiate(range(2, 9)) == 2  # a newer peer that still speaks ours


def test_the_instance_layout_names_every_field_once() -> None:
    """A field added to InstanceInfo must be appended to the layout (or version 2 would silently drop it), and
    the dataclass keeps the layout's order: decoding hands the values to `InstanceInfo.from_values` as listed."""
    assert wire.INSTANCE_FIELDS == FIELD_NAMES == tuple(f.name for f in dataclasses.fields(InstanceInfo))


def v2_push(instance: list[object]) -> bytes:
    record = ["SVC", "i-1", instance, {"a~1": 1}, list(STAMP), [0, 0, ""]]
    frame = {"v": 2, "r": [1, 2], "t": 1, "b": ["a~1", 0, 1, [record], [], [], [], []]}
    return msgpack.packb(frame, use_bin_type=True)


def values(info: InstanceInfo) -> list[object]:
    return msgpack.unpackb(msgpack.packb(wire._values(info), default=wire._plain))  # as a peer's frame holds them


def decoded_info(data: bytes) -> InstanceInfo:
    message = wire.decode(data)
    assert isinstance(message, Push) and message.delta.records[0].info is not None
    return message.delta.records[0].info


def test_values_a_newer_peer_appends_are_dropped() -> None:
    assert decoded_info(v2_push([*values(INFO), "a field from the future", {"nested": [1]}])) == INFO


def test_fields_an_older_peer_does_not_send_take_their_defaults() -> None:
    short = decoded_info(v2_push(["SVC", "i-1", "h1", "10.0.0.1"]))
    assert short == InstanceInfo(app="SVC", instance_id="i-1", host_name="h1", ip_addr="10.0.0.1")


@pytest.mark.parametrize("data", [
    v2_push(["SVC", "i-1", "h1"]),  # fewer values than the required fields
    v2_push([*values(INFO), *[None] * wire.MAX_INSTANCE_FIELDS]),  # longer than any version could be
    v2_push({"app": "SVC"}),  # type: ignore[arg-type]  # a version 1 map in a version 2 frame
    v2_push([*values(INFO)[:6], "7001", *values(INFO)[7:]]),  # port as a string
    v2_push([*values(INFO)[:4], "SLEEPY", *values(INFO)[5:]]),
    msgpack.packb({"v": 3, "r": [1, 3], "t": 2, "b": []}),  # a version this node does not speak
    msgpack.packb({"v": 2, "r": [3, 4], "t": 2, "b": []}),  # a frame outside its sender's own range
    msgpack.packb({"v": "2", "t": 2, "b": []}),
    msgpack.packb({"v": 2, "r": [1], "t": 2, "b": []}),
], ids=range(9))
def test_bad_version_2_input_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(data)


def test_a_version_this_node_does_not_speak_is_refused_naming_both_ranges() -> None:
    with pytest.raises(wire.WireError, match="this node speaks 1-2, the sender 3-4"):
        wire.decode(msgpack.packb({"v": 4, "r": [3, 4], "t": 2, "b": []}))


async def test_a_node_answers_a_version_1_digest_in_version_1_and_its_peers_in_version_2() -> None:
    async with LocalCluster(2) as cluster:
        await cluster.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", "s1"))
        old_digest = msgpack.packb({"v": 1, "t": 2, "b": ["old~1", 0, "", 0, []]})  # as a version 1 node asks
        status, payload, _ = await cluster.request(0, "POST", "/v1/peer/messages", data=old_digest)
        assert status == 200 and msgpack.unpackb(payload)["v"] == 1
        assert [r.key.instance_id for r in wire.decode(payload).delta.records] == ["s1"]  # type: ignore[union-attr]

        async def upgraded() -> bool:  # each node learned from the other's answers that both speak version 2
            return all(link.wire_version == 2 for node in cluster.nodes.values() for link in node.links.values())

        assert await eventually(upgraded)

        async def replicated() -> bool:
            return "s1" in await cluster.ids(1)

        assert await eventually(replicated)
