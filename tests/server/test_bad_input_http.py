"""Bad input (I8): each is refused with a clear 4xx, counted, changes nothing, and the node keeps serving."""
from __future__ import annotations

import copy
import json
import time

import msgpack
import pytest

from apreg.core.entry import Entry
from apreg.core.instance import InstanceInfo, InstanceKey
from apreg.core.messages import Digest
from apreg.eureka import codec
from apreg.peer import auth, wire

from .harness import LocalCluster, instance_body

SECRET = "test-secret"
GOOD = instance_body("bad", "b1")["instance"]
BAD_REGISTERS = [
    (b"{not json", "application/json", "malformed_json"),
    (b"<instance><app>BAD</app>", "application/xml", "malformed_xml"),
    (b"[]", "application/json", None),
    (json.dumps({"instance": {k: v for k, v in GOOD.items() if k != "hostName"}}).encode(), "application/json",
     "missing_field"),
    (json.dumps({"instance": {**GOOD, "status": "SLEEPY"}}).encode(), "application/json", "invalid_status"),
    (json.dumps({"instance": {**GOOD, "port": {"$": "eighty"}}}).encode(), "application/json", "invalid_port"),
    (json.dumps({"instance": {**GOOD, "metadata": {"k": {"nested": 1}}}}).encode(), "application/json",
     "invalid_metadata"),
    (b"\xff\xfe\x00garbage", "application/json", None),
    (json.dumps({"instance": {**GOOD, "leaseInfo": {"renewalIntervalInSecs": 0.0001}}}).encode(),
     "application/json", "invalid_field"),  # a 0 ms interval would stop every eviction pass
]


State = tuple[int, dict[InstanceKey, Entry]]
_before: dict[int, State] = {}  # each cluster's state once set up, by id


def _state(c: LocalCluster) -> State:
    """All the node holds: its log head and a copy of every entry (record, vector, stamp, lease, eviction)."""
    replica = c.nodes[0].replica
    return replica.log.head, {key: copy.copy(entry) for key, entry in replica.entries.items()}


@pytest.fixture
async def cluster():  # type: ignore[no-untyped-def]
    async with LocalCluster(1, secret=SECRET) as c:
        await c.request(0, "POST", "/eureka/apps/keep", json_body=instance_body("keep", "k1"))
        _before[id(c)] = _state(c)
        yield c
        del _before[id(c)]


async def _unchanged(c: LocalCluster) -> None:
    assert await c.ids(0) == {"k1"}
    assert _state(c) == _before[id(c)]


@pytest.mark.parametrize(("body", "ctype", "error"), BAD_REGISTERS)
async def test_bad_register_bodies_get_400_with_a_json_error(cluster: LocalCluster, body: bytes, ctype: str,
                                                             error: str | None) -> None:
    status, payload, _ = await cluster.request(0, "POST", "/eureka/apps/BAD", data=body,
                                               headers={"Content-Type": ctype})
    assert status == 400
    doc = json.loads(payload)
    assert doc["detail"] and (error is None or doc["error"] == error)
    await _unchanged(cluster)


async def test_missing_field_error_names_the_field(cluster: LocalCluster) -> None:
    body = json.dumps({"instance": {k: v for k, v in GOOD.items() if k != "ipAddr"}}).encode()
    _, payload, _ = await cluster.request(0, "POST", "/eureka/apps/BAD", data=body,
                                          headers={"Content-Type": "application/json"})
    assert "ipAddr" in json.loads(payload)["detail"]


async def test_oversized_body_gets_413(cluster: LocalCluster) -> None:
    status, payload, _ = await cluster.request(0, "POST", "/eureka/apps/BAD", data=b"x" * (2 * 1024 * 1024),
                                               headers={"Content-Type": "application/json"})
    assert status == 413 and json.loads(payload)["error"]
    await _unchanged(cluster)


@pytest.mark.parametrize(("method", "path", "want"), [
    ("PUT", "/eureka/apps/KEEP/k1/status?value=NOT_A_STATUS", 400),
    ("PUT", "/eureka/apps/KEEP/k1/status", 400),  # no value: not an override to UNKNOWN
    ("PUT", "/eureka/apps/KEEP/k1/metadata?" + "&".join(f"k{n}=v" for n in range(65)), 400),
    ("PUT", "/eureka/apps/KEEP/k1/metadata?=x&ctl=%01y", 400),  # an empty key, a control character
    ("PUT", "/eureka/apps/KEEP/k1/metadata?ok=1&" + "k" * 300 + "=v", 400),
    ("PUT", "/eureka/apps/KEEP/k1?lastDirtyTimestamp=banana", 400),
    ("PUT", "/eureka/apps/KEEP/nobody/status?value=UP", 404),
    ("GET", "/eureka/apps/NOPE", 404),
    ("GET", "/v1/watch?since=-3", 400),
    ("GET", "/v1/watch?since=%C2%B2", 400),  # "²": a digit to str.isdigit, not a number to int()
    ("GET", "/v1/watch?since=" + "9" * 5000, 400),
    ("GET", "/v1/watch?heartbeat=soon", 400),
])
async def test_bad_queries_and_unknown_targets(cluster: LocalCluster, method: str, path: str, want: int) -> None:
    status, payload, _ = await cluster.request(0, method, path)
    assert status == want and json.loads(payload)["error"]
    await _unchanged(cluster)


async def test_metadata_updates_cannot_add_up_to_more_keys_than_a_registration_takes(cluster: LocalCluster) -> None:
    """Each update is within its own bound (64 keys); the instance's total (256) holds across updates too."""
    path = "/eureka/apps/KEEP/k1/metadata?"
    for batch in range(3):  # the registered zone + 192
        assert (await cluster.request(0, "PUT", path + "&".join(f"b{batch}k{n}=v" for n in range(64))))[0] == 200
    before = _state(cluster)
    status, payload, _ = await cluster.request(0, "PUT", path + "&".join(f"b3k{n}=v" for n in range(64)))
    assert status == 400 and json.loads(payload)["error"] == "invalid_metadata"
    assert "257 entries" in json.loads(payload)["detail"]
    assert _state(cluster) == before  # nothing changed, nothing logged
    assert (await cluster.request(0, "PUT", path + "&".join(f"b0k{n}=w" for n in range(64))))[0] == 200  # no growth
    assert (await cluster.request(0, "PUT", path + "&".join(f"b3k{n}=v" for n in range(63))))[0] == 200  # 256


async def test_metadata_updates_cannot_add_up_to_more_characters_than_a_registration_takes(
        cluster: LocalCluster) -> None:
    accepted = 0
    for n in range(70):  # one 4,096-character value per update (a request line holds about 8 KB)
        status, payload, _ = await cluster.request(0, "PUT", f"/eureka/apps/KEEP/k1/metadata?s{n}=" + "x" * 4096)
        if status != 200:
            assert status == 400 and json.loads(payload)["error"] == "too_long"
            break
        accepted += 1
    total = len("zone") + len("z1")
    fits = next(k for k in range(70) if (total := total + len(f"s{k}") + 4096) > codec.MAX_METADATA_CHARS)
    assert accepted == fits
    info = cluster.nodes[0].replica.visible(InstanceKey.of("KEEP", "k1")).info  # type: ignore[union-attr]
    assert len(info.metadata) == accepted + 1


async def test_a_last_event_id_that_is_no_number_gets_400(cluster: LocalCluster) -> None:
    status, payload, _ = await cluster.request(0, "GET", "/v1/watch", headers={"Last-Event-ID": "\u00b2"})
    assert status == 400 and json.loads(payload)["error"]


@pytest.mark.parametrize("path", ["/v1/peer/messages", "/v1/peer/anything", "/v1/peer"])
async def test_unsigned_peer_requests_get_401_before_routing(cluster: LocalCluster, path: str) -> None:
    status, _, _ = await cluster.request(0, "POST", path, data=wire.encode(Digest("x~1", 0, "", 0)))
    assert status == 401
    assert cluster.nodes[0].rejected.auth >= 1


async def test_replayed_or_forged_peer_messages_get_401(cluster: LocalCluster) -> None:
    body = wire.encode(Digest("x~1", 0, "", 0))
    old = auth.sign(SECRET.encode(), "POST", "/v1/peer/messages", body, time.time_ns() // 1_000_000 - 120_000)
    ahead = auth.sign(SECRET.encode(), "POST", "/v1/peer/messages", body, time.time_ns() // 1_000_000 + 120_000)
    forged = auth.sign(b"wrong", "POST", "/v1/peer/messages", body, time.time_ns() // 1_000_000)
    for headers in (old, ahead, forged):
        assert (await cluster.request(0, "POST", "/v1/peer/messages", data=body, headers=headers))[0] == 401
    assert cluster.nodes[0].rejected.auth == 3


async def test_a_captured_signed_digest_cannot_be_played_again(cluster: LocalCluster) -> None:
    """Within the window a replayed digest would read the whole registry: the same signature works once."""
    body = wire.encode(Digest("x~1", 0, "", 0))
    headers = auth.sign(SECRET.encode(), "POST", "/v1/peer/messages", body, time.time_ns() // 1_000_000)
    assert (await cluster.request(0, "POST", "/v1/peer/messages", data=body, headers=headers))[0] == 200
    status, payload, _ = await cluster.request(0, "POST", "/v1/peer/messages", data=body, headers=headers)
    assert status == 401 and "replayed" in json.loads(payload)["detail"]
    bad_time = {**headers, auth.TIMESTAMP_HEADER: "\u00b2"}  # a digit to str.isdigit, no number to int()
    assert (await cluster.request(0, "POST", "/v1/peer/messages", data=body, headers=bad_time))[0] == 401


@pytest.mark.parametrize(("max_clock_skew", "offset_s", "want"), [
    (60.0, -45, 200), (60.0, 45, 200), (60.0, -75, 401), (60.0, 75, 401),
    (10.0, -5, 200), (10.0, 5, 200), (10.0, -20, 401), (10.0, 20, 401),
])
async def test_signatures_are_accepted_as_far_off_as_the_clock_skew_guard_allows(
        max_clock_skew: float, offset_s: int, want: int) -> None:
    """One setting bounds both: a peer whose clock the HLC accepts is not refused a signature, and the other way
    round (a fixed 30 s window refused peers 31-60 s off with 401 once a secret was set)."""
    body = wire.encode(Digest("x~1", 0, "", 0))
    async with LocalCluster(1, secret=SECRET, max_clock_skew=max_clock_skew) as c:
        headers = auth.sign(SECRET.encode(), "POST", "/v1/peer/messages", body,
                            time.time_ns() // 1_000_000 + offset_s * 1000)
        assert (await c.request(0, "POST", "/v1/peer/messages", data=body, headers=headers))[0] == want


TINY_LEASE = {**InstanceInfo("BAD", "b9", "h", "10.0.0.1").to_dict(), "renewal_interval_s": 0.0001}


@pytest.mark.parametrize("body", [b"\x81\xa4type\xa8register", msgpack.packb({"v": 1, "t": 99, "b": []}),
                                  msgpack.packb({"v": 1, "t": 1, "b": ["x", 0, 0, [["A", "i", {"app": 5}]], []]}),
                                  msgpack.packb({"v": 1, "t": 1, "b": ["x~1", 0, 1, [
                                      ["BAD", "b9", TINY_LEASE, {"x~1": 1}, [1, 0, "x~1"], [0, 0, ""]]],
                                      [], [], [], []]}),
                                  b"\x00" * 100])
async def test_signed_garbage_or_unknown_message_types_get_400(cluster: LocalCluster, body: bytes) -> None:
    headers = auth.sign(SECRET.encode(), "POST", "/v1/peer/messages", body, time.time_ns() // 1_000_000)
    status, payload, _ = await cluster.request(0, "POST", "/v1/peer/messages", data=body, headers=headers)
    assert status == 400 and json.loads(payload)["error"] == "bad_peer_message"
    assert cluster.nodes[0].rejected.peer >= 1
    await _unchanged(cluster)


async def test_a_signed_valid_digest_is_answered(cluster: LocalCluster) -> None:
    body = wire.encode(Digest("x~1", 0, "", 0))
    headers = auth.sign(SECRET.encode(), "POST", "/v1/peer/messages", body, time.time_ns() // 1_000_000)
    status, payload, _ = await cluster.request(0, "POST", "/v1/peer/messages", data=body, headers=headers)
    assert status == 200
    reply = wire.decode(payload)
    assert [r.key.instance_id for r in reply.delta.records] == ["k1"]  # type: ignore[union-attr]
