import json

import pytest

from apreg.client import Registration
from apreg.client._codec import parse_applications, parse_change, parse_instance, reconcile_hash, registration_body
from apreg.client._sse import SseEvent, SseParser

from .fake_registry import instance


def test_parse_instance_reads_eureka_json_leniently() -> None:
    raw = instance("orders", "o-1", zone="a", port=8080)
    raw["metadata"] = {"@class": "java.util.HashMap", "zone": "a", "weight": 3}
    raw["securePort"] = {"$": "8443", "@enabled": "true"}
    inst = parse_instance(raw)
    assert (inst.app, inst.instance_id, inst.port, inst.secure_port, inst.status) == ("ORDERS", "o-1", 8080, 8443, "UP")
    assert inst.metadata == {"zone": "a", "weight": "3"} and inst.zone == "a"
    assert inst.url == "http://127.0.0.1:8080"


@pytest.mark.parametrize("raw", [{}, {"app": "X"}, {"app": "X", "instanceId": "i", "port": {"$": "nan"}},
                                 {"app": "X", "instanceId": "i", "metadata": ["a"]}])
def test_parse_instance_rejects_unusable_input(raw: dict) -> None:
    with pytest.raises(ValueError):
        parse_instance(raw)


def test_parse_applications_accepts_single_objects_and_lists() -> None:
    doc = {"applications": {"versions__delta": "3", "apps__hashcode": "UP_2_", "application": [
        {"name": "A", "instance": {**instance("a", "a-1"), "actionType": "ADDED"}},
        {"name": "B", "instance": [instance("b", "b-1")]}]}}
    hashcode, entries = parse_applications(doc)
    assert hashcode == "UP_2_"
    assert [(action, i.instance_id) for action, i in entries] == [("ADDED", "a-1"), ("", "b-1")]
    assert parse_applications({"applications": {"apps__hashcode": "", "application": []}}) == ("", [])
    with pytest.raises(ValueError):
        parse_applications({"apps": []})


def test_reconcile_hash_is_eurekas() -> None:
    assert reconcile_hash(["UP", "DOWN", "UP"]) == "DOWN_1_UP_2_"
    assert reconcile_hash(["UP", "OUT_OF_SERVICE", "STARTING"]) == "OUT_OF_SERVICE_1_STARTING_1_UP_1_"
    assert reconcile_hash([]) == ""


def test_parse_change() -> None:
    data = json.dumps({"seq": 7, "app": "orders", "instance_id": "o-1", "action": "cancel", "version": 2,
                       "applied_ms": 1, "instance": None})
    change = parse_change(data)
    assert (change.seq, change.app, change.instance_id, change.action, change.instance) == (7, "ORDERS", "o-1", "cancel", None)
    with pytest.raises(ValueError):
        parse_change('{"seq": 1}')
    with pytest.raises(ValueError):
        parse_change("not json")


def test_registration_body_has_eurekas_shape() -> None:
    reg = Registration("ORDERS", "o-1", "host-1", "10.0.0.5", 8080, renewal_interval=0.5, lease_duration=90,
                       last_dirty_timestamp=1234, metadata={"zone": "a"})
    body = registration_body(reg)["instance"]
    assert body["app"] == "ORDERS" and body["instanceId"] == "o-1" and body["hostName"] == "host-1"
    assert body["ipAddr"] == "10.0.0.5" and body["status"] == "UP"
    assert body["port"] == {"$": 8080, "@enabled": "true"}
    assert body["securePort"]["@enabled"] == "false"
    assert body["dataCenterInfo"] == {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
    assert body["leaseInfo"] == {"renewalIntervalInSecs": 0.5, "durationInSecs": 90}
    assert body["vipAddress"] == "orders" and body["metadata"] == {"zone": "a"}
    assert body["lastDirtyTimestamp"] == "1234"
    assert parse_instance(body).instance_id == "o-1"  # what we send, we can read back


def test_sse_parser_follows_the_spec() -> None:
    parser = SseParser()
    lines = [": heartbeat\n", "event: change\n", "id: 5\n", "data: {\"a\":\n", "data: 1}\n", "\n",
             "\n", "data:x\r\n", "retry: 10\n", "\n"]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert events == [SseEvent("change", '{"a":\n1}', "5"), SseEvent("message", "x", "5")]
    assert parser.last_id == "5"
