"""The Eureka codec: lenient where Eureka is, strict where stored data would be wrong, exact on output."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apreg.core.errors import Fault
from apreg.core.instance import DEFAULT_DATA_CENTER_CLASS, InstanceInfo, Status
from apreg.eureka.codec import (
    MAX_METADATA_CHARS,
    MAX_METADATA_ENTRIES,
    CodecError,
    parse_metadata_update,
    parse_register,
    parse_status,
    parse_timestamp,
)
from apreg.eureka.render import (
    EMPTY_MAP_CLASS,
    instance_dict,
    reconcile_hashcode,
    render_application,
    render_applications,
    render_instance,
    wants_json,
)
from apreg.eureka.views import InstanceView, LeaseTimes

NOW = 1_732_610_500_000

# eureka-facts 1.8: what py-eureka-client 0.13.3 sends.
PY_CLIENT_BODY: dict[str, Any] = {
    "instance": {
        "instanceId": "10.0.0.5:orders:8080",
        "hostName": "orders-1",
        "app": "ORDERS",
        "ipAddr": "10.0.0.5",
        "status": "UP",
        "overriddenstatus": "UNKNOWN",
        "port": {"$": 8080, "@enabled": "true"},
        "securePort": {"$": 9443, "@enabled": "false"},
        "countryId": 1,
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
        "leaseInfo": {
            "renewalIntervalInSecs": 30,
            "durationInSecs": 90,
            "registrationTimestamp": 0,
            "lastRenewalTimestamp": 0,
            "evictionTimestamp": 0,
            "serviceUpTimestamp": 0,
        },
        "metadata": {"management.port": "8080"},
        "homePageUrl": "http://orders-1:8080/",
        "statusPageUrl": "http://orders-1:8080/info",
        "healthCheckUrl": "http://orders-1:8080/health",
        "secureHealthCheckUrl": "",
        "vipAddress": "orders",
        "secureVipAddress": "orders",
        "lastUpdatedTimestamp": "1732610000000",
        "lastDirtyTimestamp": "1732610000000",
        "isCoordinatingDiscoveryServer": "false",
    }
}

MINIMAL = {
    "hostName": "cart-1",
    "app": "CART",
    "ipAddr": "10.0.0.9",
    "dataCenterInfo": {"@class": DEFAULT_DATA_CENTER_CLASS, "name": "MyOwn"},
}


def register(instance: Any, path_app: str = "CART", now_ms: int = NOW) -> InstanceInfo:
    return parse_register(json.dumps({"instance": instance}).encode(), "application/json", path_app, now_ms)


def with_fields(**changes: Any) -> dict[str, Any]:
    return {**MINIMAL, **changes}


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in MINIMAL.items() if k != field}


def codec_error(instance: Any, path_app: str = "CART") -> CodecError:
    with pytest.raises(CodecError) as caught:
        register(instance, path_app)
    return caught.value


def view(info: InstanceInfo, action: str | None = None, **lease: Any) -> InstanceView:
    times = {"renewal_interval_s": 30.0, "duration_s": 90.0, "registration_ms": 1, "last_renewal_ms": 2, **lease}
    return InstanceView(info, LeaseTimes(**times), action)


def info(**changes: Any) -> InstanceInfo:
    base = InstanceInfo(app="ORDERS", instance_id="orders-1:8080", host_name="orders-1", ip_addr="10.0.0.5")
    return base.replace(**changes)


# ---------------------------------------------------------------------------------------------------------------
# parse_register: accepted inputs


def test_py_eureka_client_body_parses() -> None:
    got = parse_register(json.dumps(PY_CLIENT_BODY).encode(), "application/json", "orders", NOW)
    assert got == InstanceInfo(
        app="ORDERS",
        instance_id="10.0.0.5:orders:8080",
        host_name="orders-1",
        ip_addr="10.0.0.5",
        status=Status.UP,
        overridden_status=Status.UNKNOWN,
        port=8080,
        port_enabled=True,
        secure_port=9443,
        secure_port_enabled=False,
        country_id=1,
        data_center_name="MyOwn",
        renewal_interval_s=30.0,
        lease_duration_s=90.0,
        metadata={"management.port": "8080"},
        home_page_url="http://orders-1:8080/",
        status_page_url="http://orders-1:8080/info",
        health_check_url="http://orders-1:8080/health",
        secure_health_check_url="",
        vip_address="orders",
        secure_vip_address="orders",
        last_dirty_timestamp=1732610000000,
        last_updated_timestamp=NOW,
        registered_ms=NOW,
    )


def test_minimal_body_takes_eureka_defaults() -> None:
    got = register(MINIMAL)
    assert (got.instance_id, got.status, got.overridden_status) == ("cart-1", Status.UP, Status.UNKNOWN)
    assert (got.port, got.port_enabled, got.secure_port, got.secure_port_enabled) == (7001, True, 7002, False)
    assert got.renewal_interval_s is None and got.lease_duration_s is None
    assert got.last_dirty_timestamp == NOW and got.last_updated_timestamp == NOW
    assert got.metadata == {} and got.vip_address is None


@pytest.mark.parametrize("key", ["overriddenStatus", "overriddenstatus"])
def test_both_override_spellings(key: str) -> None:
    assert register(with_fields(**{key: "OUT_OF_SERVICE"})).overridden_status is Status.OUT_OF_SERVICE


def test_status_is_case_insensitive_like_eureka() -> None:
    assert register(with_fields(status="down")).status is Status.DOWN


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (8080, (8080, True)),
        ("8080", (8080, True)),
        ({"$": 8080, "@enabled": "true"}, (8080, True)),
        ({"$": "8080", "@enabled": "false"}, (8080, False)),
        ({"$": 8080, "@enabled": True}, (8080, True)),
        ({"$": 8080.0}, (8080, True)),
        (0, (0, True)),
        (65535, (65535, True)),
    ],
)
def test_port_forms(port: Any, expected: tuple[int, bool]) -> None:
    got = register(with_fields(port=port))
    assert (got.port, got.port_enabled) == expected


def test_secure_port_enabled_flag() -> None:
    got = register(with_fields(securePort={"$": "443", "@enabled": "TRUE"}))
    assert (got.secure_port, got.secure_port_enabled) == (443, True)


def test_timestamps_and_lease_as_strings_or_numbers() -> None:
    got = register(
        with_fields(
            lastDirtyTimestamp=1732610000001,
            leaseInfo={"renewalIntervalInSecs": "10", "durationInSecs": 0.5, "serviceUpTimestamp": "42"},
        )
    )
    assert got.last_dirty_timestamp == 1732610000001
    assert (got.renewal_interval_s, got.lease_duration_s, got.service_up_timestamp) == (10.0, 0.5, 42)
    assert register(with_fields(lastDirtyTimestamp="1732610000002")).last_dirty_timestamp == 1732610000002


@pytest.mark.parametrize("lease", [{"renewalIntervalInSecs": 0, "durationInSecs": "0"}, {}, None])
def test_zero_or_missing_lease_means_node_default(lease: Any) -> None:
    got = register(with_fields(leaseInfo=lease))
    assert got.renewal_interval_s is None and got.lease_duration_s is None


def test_metadata_leniency() -> None:
    got = register(
        with_fields(metadata={"@class": "java.util.Collections$EmptyMap", "n": 5, "b": True, "f": 1.5, "null": None})
    )
    assert got.metadata == {"n": "5", "b": "true", "f": "1.5"}


def test_unknown_fields_and_nulls_are_ignored() -> None:
    got = register(with_fields(somethingNew={"x": [1]}, vipAddress=None, status=None, port=None, sid=None))
    assert got == register(MINIMAL)


def test_app_matches_path_case_insensitively_and_is_stored_upper() -> None:
    assert register(with_fields(app="cart"), path_app="Cart").app == "CART"


def test_instance_id_from_metadata_is_host_prefixed() -> None:
    assert register(with_fields(metadata={"instanceId": "cart:1"})).instance_id == "cart-1:cart:1"
    assert register(with_fields(metadata={"instanceId": "cart-1:x"})).instance_id == "cart-1:x"


def test_instance_id_falls_back_to_amazon_id_then_host() -> None:
    amazon = {"@class": "com.netflix.appinfo.AmazonInfo", "name": "Amazon", "metadata": {"instance-id": "i-42"}}
    got = register(with_fields(dataCenterInfo=amazon))
    assert got.instance_id == "i-42"
    assert (got.data_center_class, got.data_center_metadata) == ("com.netflix.appinfo.AmazonInfo", {"instance-id": "i-42"})
    assert register(with_fields(instanceId="")).instance_id == "cart-1"


def test_content_type_missing_sniffs_body() -> None:
    body = json.dumps({"instance": MINIMAL}).encode()
    assert parse_register(b"  " + body, None, "CART", NOW) == register(MINIMAL)
    xml = b"<instance><hostName>h</hostName><app>CART</app><ipAddr>1.2.3.4</ipAddr><dataCenterInfo><name>MyOwn</name></dataCenterInfo></instance>"
    assert parse_register(xml, "", "CART", NOW).host_name == "h"


def test_xml_register_body() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
    <instance>
      <instanceId>cart-1:8081</instanceId><hostName>cart-1</hostName><app>cart</app><ipAddr>10.0.0.9</ipAddr>
      <status>STARTING</status><overriddenstatus>UNKNOWN</overriddenstatus>
      <port enabled="true">8081</port><securePort enabled="false">443</securePort><countryId>1</countryId>
      <dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>
      <leaseInfo><renewalIntervalInSecs>5</renewalIntervalInSecs><durationInSecs>15</durationInSecs></leaseInfo>
      <metadata><management.port>8081</management.port><my__key>v</my__key><a_-b>dollar</a_-b></metadata>
      <vipAddress>cart</vipAddress><lastDirtyTimestamp>1732610000000</lastDirtyTimestamp>
    </instance>"""
    got = parse_register(body, "application/xml; charset=utf-8", "CART", NOW)
    assert (got.app, got.instance_id, got.status, got.port, got.secure_port_enabled) == (
        "CART",
        "cart-1:8081",
        Status.STARTING,
        8081,
        False,
    )
    assert (got.renewal_interval_s, got.lease_duration_s) == (5.0, 15.0)
    assert got.metadata == {"management.port": "8081", "my_key": "v", "a$b": "dollar"}
    assert got.last_dirty_timestamp == 1732610000000


def test_xml_empty_metadata_with_class_attribute() -> None:
    body = (
        b"<instance><hostName>h</hostName><app>CART</app><ipAddr>1.2.3.4</ipAddr>"
        b'<dataCenterInfo class="x"><name>MyOwn</name></dataCenterInfo>'
        b'<metadata class="java.util.Collections$EmptyMap"/></instance>'
    )
    assert parse_register(body, "text/xml", "CART", NOW).metadata == {}


# ---------------------------------------------------------------------------------------------------------------
# parse_register: refused inputs


@pytest.mark.parametrize("field", ["hostName", "ipAddr", "app", "dataCenterInfo"])
def test_missing_required_field_is_named(field: str) -> None:
    err = codec_error(without(field))
    assert err.error == "missing_field" and field in err.detail


@pytest.mark.parametrize("dc", [{"@class": DEFAULT_DATA_CENTER_CLASS}, {"name": ""}, {"name": None}])
def test_missing_data_center_name(dc: dict[str, Any]) -> None:
    err = codec_error(with_fields(dataCenterInfo=dc))
    assert (err.error, "dataCenterInfo.name" in err.detail) == ("missing_field", True)


def test_empty_host_counts_as_missing() -> None:
    err = codec_error(with_fields(hostName=""))
    assert (err.error, "hostName" in err.detail) == ("missing_field", True)


def test_app_mismatch() -> None:
    err = codec_error(with_fields(app="ORDERS"), path_app="CART")
    assert err.error == "app_mismatch" and "ORDERS" in err.detail and "CART" in err.detail


@pytest.mark.parametrize("field", ["status", "overriddenStatus", "overriddenstatus"])
@pytest.mark.parametrize("value", ["SLEEPY", 3, {"x": 1}])
def test_invalid_status_is_named(field: str, value: Any) -> None:
    err = codec_error(with_fields(**{field: value}))
    assert err.error == "invalid_status" and field in err.detail


@pytest.mark.parametrize(
    "port", ["eighty", 70000, -1, True, 80.5, "", {"@enabled": "true"}, {"$": 80, "@enabled": "maybe"}, [80]]
)
@pytest.mark.parametrize("field", ["port", "securePort"])
def test_invalid_port_is_named(field: str, port: Any) -> None:
    err = codec_error(with_fields(**{field: port}))
    assert err.error == "invalid_port" and field in err.detail


@pytest.mark.parametrize("metadata", [{"k": {"nested": "x"}}, {"k": ["a"]}, ["k"], "k=v", {"": "v"}, {"k": "\x00"}])
def test_invalid_metadata(metadata: Any) -> None:
    err = codec_error(with_fields(metadata=metadata))
    assert err.error == "invalid_metadata" and "metadata" in err.detail


def test_too_many_metadata_entries() -> None:
    err = codec_error(with_fields(metadata={f"k{i}": "v" for i in range(MAX_METADATA_ENTRIES + 1)}))
    assert err.error == "invalid_metadata" and "metadata" in err.detail


def test_metadata_larger_in_total_than_the_bound_is_refused_at_registration_and_update() -> None:
    held = {f"k{i:02}": "v" * 4000 for i in range(MAX_METADATA_CHARS // 4003)}  # 65 entries, 260,195 characters
    assert codec_error(with_fields(metadata={**held, "more": "v" * 2000})).error == "too_long"
    with pytest.raises(CodecError) as refused:
        parse_metadata_update({"more": "v" * 2000}, held)
    assert refused.value.error == "too_long" and "after this update" in refused.value.detail
    assert parse_metadata_update({"more": "v" * 1900}, held) == {"more": "v" * 1900}  # 262,099: fits


def test_data_center_metadata_is_validated() -> None:
    err = codec_error(with_fields(dataCenterInfo={"name": "Amazon", "metadata": {"ami": {"id": 1}}}))
    assert err.error == "invalid_metadata" and "dataCenterInfo.metadata.ami" in err.detail


@pytest.mark.parametrize("field", ["hostName", "app", "instanceId", "ipAddr"])
def test_oversized_names(field: str) -> None:
    huge = "A" * 257
    err = codec_error(with_fields(**{field: huge}), path_app=huge if field == "app" else "CART")
    assert err.error == "too_long" and field in err.detail


def test_derived_instance_id_is_bounded() -> None:
    err = codec_error(with_fields(hostName="h" * 200, metadata={"instanceId": "i" * 200}))
    assert err.error == "too_long" and "instanceId" in err.detail


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"hostName": 12}, "invalid_field", "hostName"),
        ({"vipAddress": ["a"]}, "invalid_field", "vipAddress"),
        ({"lastDirtyTimestamp": "banana"}, "invalid_timestamp", "lastDirtyTimestamp"),
        ({"lastDirtyTimestamp": -5}, "invalid_timestamp", "lastDirtyTimestamp"),
        ({"lastDirtyTimestamp": {"x": 1}}, "invalid_timestamp", "lastDirtyTimestamp"),
        ({"leaseInfo": {"durationInSecs": "soon"}}, "invalid_field", "leaseInfo.durationInSecs"),
        ({"leaseInfo": {"durationInSecs": -1}}, "invalid_field", "leaseInfo.durationInSecs"),
        ({"leaseInfo": {"renewalIntervalInSecs": 10**400}}, "invalid_field", "leaseInfo.renewalIntervalInSecs"),
        # under a millisecond: it would become a 0 ms interval, and every eviction pass would divide by it
        ({"leaseInfo": {"renewalIntervalInSecs": 0.0001}}, "invalid_field", "leaseInfo.renewalIntervalInSecs"),
        ({"leaseInfo": {"durationInSecs": "0.0004"}}, "invalid_field", "leaseInfo.durationInSecs"),
        ({"leaseInfo": {"serviceUpTimestamp": "x"}}, "invalid_timestamp", "leaseInfo.serviceUpTimestamp"),
        ({"leaseInfo": [1]}, "invalid_field", "leaseInfo"),
        ({"countryId": "one"}, "invalid_field", "countryId"),
        ({"dataCenterInfo": "MyOwn"}, "invalid_field", "dataCenterInfo"),
        ({"homePageUrl": "http://x/\x07"}, "invalid_field", "homePageUrl"),
        ({"homePageUrl": "h" * 5000}, "too_long", "homePageUrl"),
    ],
)
def test_other_invalid_fields_are_named(changes: dict[str, Any], error: str, field: str) -> None:
    err = codec_error(with_fields(**changes))
    assert err.error == error and field in err.detail


@pytest.mark.parametrize(
    "body",
    [b'{"instance": {', b"\xff\xfe{}", b"[1, 2]", b'"instance"', b"{" * 100_000 + b"}" * 100_000, b"NaN"],
)
def test_malformed_json(body: bytes) -> None:
    with pytest.raises(CodecError) as caught:
        parse_register(body, "application/json", "CART", NOW)
    assert caught.value.error == "malformed_json"


@pytest.mark.parametrize("body", [b"{}", b'{"instance": "x"}', b'{"instances": {}}'])
def test_json_without_instance_object(body: bytes) -> None:
    with pytest.raises(CodecError) as caught:
        parse_register(body, "application/json", "CART", NOW)
    assert (caught.value.error, "instance" in caught.value.detail) == ("missing_field", True)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<instance><hostName>&lol3;</hostName></instance>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><instance><hostName>&e;</hostName></instance>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        XXE,
        b"<instance><hostName>h</instance>",
        b"<applications/>",
        b"<instance>\xff</instance>",
        b"<instance>&undefined;</instance>",
        b'<?xml version="1.0" encoding="bogus"?><instance/>',
    ],
)
def test_malformed_xml(body: bytes) -> None:
    with pytest.raises(CodecError) as caught:
        parse_register(body, "application/xml", "CART", NOW)
    assert caught.value.error == "malformed_xml"


@pytest.mark.parametrize(("body", "content_type"), [(b"{}", "text/plain"), (b"hello", None), (b"", "")])
def test_unsupported_media_type(body: bytes, content_type: str | None) -> None:
    with pytest.raises(CodecError) as caught:
        parse_register(body, content_type, "CART", NOW)
    assert caught.value.error == "unsupported_media_type"


# ---------------------------------------------------------------------------------------------------------------
# parse_status, parse_timestamp


def test_parse_status() -> None:
    assert parse_status("OUT_OF_SERVICE", required=True) is Status.OUT_OF_SERVICE
    assert parse_status(" up ", required=True) is Status.UP
    assert parse_status(None, required=False) is None
    assert parse_status("", required=False) is None


def test_parse_status_errors() -> None:
    with pytest.raises(CodecError) as bad:
        parse_status("BANANA", required=False)
    assert bad.value.error == "invalid_status" and "BANANA" in bad.value.detail and "value" in bad.value.detail
    with pytest.raises(CodecError) as missing:
        parse_status(None, required=True)
    assert missing.value.error == "missing_field" and "value" in missing.value.detail


def test_parse_timestamp() -> None:
    assert parse_timestamp(None, "lastDirtyTimestamp") is None
    assert parse_timestamp("", "lastDirtyTimestamp") is None
    assert parse_timestamp("1732610000000", "lastDirtyTimestamp") == 1732610000000
    for bad in ("banana", "12.5", "-1", "9" * 30):
        with pytest.raises(CodecError) as caught:
            parse_timestamp(bad, "lastDirtyTimestamp")
        assert caught.value.error == "invalid_timestamp" and "lastDirtyTimestamp" in caught.value.detail


def test_codec_error_is_the_clients_fault_with_slug_and_detail() -> None:
    err = CodecError("missing_field", "hostName is required")
    assert (err.error, err.detail) == ("missing_field", "hostName is required")
    assert (err.fault, err.http_status, str(err)) == (Fault.CLIENT, 400, "missing_field: hostName is required")


# ---------------------------------------------------------------------------------------------------------------
# Hash code and negotiation


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([Status.UP, Status.DOWN, Status.UP], "DOWN_1_UP_2_"),
        ([], ""),
        ([Status.UP, Status.OUT_OF_SERVICE], "OUT_OF_SERVICE_1_UP_1_"),
        ([Status.UNKNOWN, Status.STARTING, Status.UP, Status.DOWN], "DOWN_1_STARTING_1_UNKNOWN_1_UP_1_"),
    ],
)
def test_reconcile_hashcode(statuses: list[Status], expected: str) -> None:
    assert reconcile_hashcode(statuses) == expected
    assert reconcile_hashcode(iter(statuses)) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [("application/json", True), ("Application/JSON;q=0.9", True), (None, False), ("*/*", False), ("application/xml", False)],
)
def test_wants_json(accept: str | None, expected: bool) -> None:
    assert wants_json(accept) is expected


# ---------------------------------------------------------------------------------------------------------------
# JSON rendering

FULL_ORDER = [
    "instanceId", "hostName", "app", "ipAddr", "sid", "status", "overriddenStatus", "port", "securePort", "countryId",
    "dataCenterInfo", "leaseInfo", "metadata", "appGroupName", "homePageUrl", "statusPageUrl", "healthCheckUrl",
    "secureHealthCheckUrl", "vipAddress", "secureVipAddress", "isCoordinatingDiscoveryServer",
    "lastUpdatedTimestamp", "lastDirtyTimestamp", "actionType", "asgName",
]  # fmt: skip


def full_info() -> InstanceInfo:
    return info(
        sid="s-1",
        status=Status.DOWN,
        overridden_status=Status.OUT_OF_SERVICE,
        port=8080,
        secure_port=443,
        secure_port_enabled=True,
        data_center_metadata={"instance-id": "i-1"},
        metadata={"management.port": "8080"},
        app_group_name="G",
        home_page_url="http://h/",
        status_page_url="http://h/info",
        health_check_url="http://h/health",
        secure_health_check_url="",
        vip_address="orders",
        secure_vip_address="orders",
        asg_name="asg",
        last_dirty_timestamp=1732610000000,
        last_updated_timestamp=1732610000123,
    )


def test_instance_dict_field_order_and_types() -> None:
    doc = instance_dict(view(full_info(), "MODIFIED", eviction_ms=3, service_up_ms=4))
    assert list(doc) == FULL_ORDER
    assert doc["port"] == {"$": 8080, "@enabled": "true"}
    assert doc["securePort"] == {"$": 443, "@enabled": "true"}
    assert doc["countryId"] == 1
    assert doc["dataCenterInfo"] == {
        "@class": DEFAULT_DATA_CENTER_CLASS,
        "name": "MyOwn",
        "metadata": {"instance-id": "i-1"},
    }
    assert doc["leaseInfo"] == {
        "renewalIntervalInSecs": 30,
        "durationInSecs": 90,
        "registrationTimestamp": 1,
        "lastRenewalTimestamp": 2,
        "evictionTimestamp": 3,
        "serviceUpTimestamp": 4,
    }
    assert all(type(v) is int for v in doc["leaseInfo"].values())
    assert (doc["status"], doc["overriddenStatus"], doc["actionType"]) == ("DOWN", "OUT_OF_SERVICE", "MODIFIED")
    assert (doc["lastUpdatedTimestamp"], doc["lastDirtyTimestamp"]) == ("1732610000123", "1732610000000")
    assert doc["isCoordinatingDiscoveryServer"] == "false"


def test_instance_dict_omits_absent_optionals() -> None:
    doc = instance_dict(view(info(sid="na")))
    assert list(doc) == [k for k in FULL_ORDER if k not in {
        "sid", "appGroupName", "homePageUrl", "statusPageUrl", "healthCheckUrl", "secureHealthCheckUrl",
        "vipAddress", "secureVipAddress", "actionType", "asgName",
    }]  # fmt: skip
    assert doc["metadata"] == {"@class": EMPTY_MAP_CLASS}
    assert doc["dataCenterInfo"] == {"@class": DEFAULT_DATA_CENTER_CLASS, "name": "MyOwn"}
    assert "sid" not in instance_dict(view(info(sid="unknown")))


def test_lease_seconds_render_as_whole_numbers_rounded_up() -> None:
    lease = instance_dict(view(info(), renewal_interval_s=0.5, duration_s=1.5))["leaseInfo"]
    assert (lease["renewalIntervalInSecs"], lease["durationInSecs"]) == (1, 2)


def test_service_up_falls_back_to_the_record() -> None:
    doc = instance_dict(view(info(service_up_timestamp=77)))
    assert doc["leaseInfo"]["serviceUpTimestamp"] == 77


def test_render_instance_json_root() -> None:
    doc = json.loads(render_instance(view(full_info()), "json"))
    assert list(doc) == ["instance"] and doc["instance"]["instanceId"] == "orders-1:8080"


def test_render_application_json_instance_is_always_a_list() -> None:
    doc = json.loads(render_application("ORDERS", [view(info())], "json"))
    assert doc == {"application": {"name": "ORDERS", "instance": [instance_dict(view(info()))]}}


def test_render_applications_json_groups_and_sorts() -> None:
    views = [
        view(info(app="ORDERS", instance_id="o1")),
        view(info(app="CART", instance_id="c1", status=Status.DOWN)),
        view(info(app="ORDERS", instance_id="o2")),
    ]
    doc = json.loads(render_applications(views, 7, "DOWN_1_UP_2_", "json"))
    apps = doc["applications"]
    assert list(apps) == ["versions__delta", "apps__hashcode", "application"]
    assert (apps["versions__delta"], apps["apps__hashcode"]) == ("7", "DOWN_1_UP_2_")
    assert [a["name"] for a in apps["application"]] == ["CART", "ORDERS"]
    assert [[i["instanceId"] for i in a["instance"]] for a in apps["application"]] == [["c1"], ["o1", "o2"]]


def test_render_applications_json_empty() -> None:
    assert json.loads(render_applications([], 3, "", "json")) == {
        "applications": {"versions__delta": "3", "apps__hashcode": "", "application": []}
    }


def test_render_rejects_unknown_format() -> None:
    with pytest.raises(ValueError):
        render_instance(view(info()), "yaml")


# ---------------------------------------------------------------------------------------------------------------
# XML rendering, read back the way py-eureka-client 0.13.3 reads it (eureka-facts section 2)


def read_like_py_eureka_client(elem: ET.Element) -> dict[str, Any]:
    """The strict parts of py-eureka-client's _build_instance: any violation raises, as it would there."""
    port = elem.find("port")
    secure = elem.find("securePort")
    dc = elem.find("dataCenterInfo")
    lease = elem.find("leaseInfo")
    assert port is not None and secure is not None and dc is not None and lease is not None
    return {
        "port": (int(port.text or ""), port.attrib["enabled"]),
        "securePort": (int(secure.text or ""), secure.attrib["enabled"]),
        "dcClass": dc.attrib["class"],
        "dcName": dc.findtext("name"),
        "countryId": int(elem.findtext("countryId") or ""),
        "lastUpdated": int(elem.findtext("lastUpdatedTimestamp") or ""),
        "lastDirty": int(elem.findtext("lastDirtyTimestamp") or ""),
        "lease": {child.tag: int(child.text or "") for child in lease},
        "metadata": {child.tag: child.text for child in elem.find("metadata") or []},
        "status": elem.findtext("status"),
        "overriddenstatus": elem.findtext("overriddenstatus"),
        "coordinating": elem.findtext("isCoordinatingDiscoveryServer"),
    }


def test_render_instance_xml_has_what_py_eureka_client_needs() -> None:
    root = ET.fromstring(render_instance(view(full_info(), "ADDED"), "xml"))
    assert root.tag == "instance"
    got = read_like_py_eureka_client(root)
    assert got["port"] == (8080, "true") and got["securePort"] == (443, "true")
    assert (got["dcClass"], got["dcName"]) == (DEFAULT_DATA_CENTER_CLASS, "MyOwn")
    assert (got["countryId"], got["lastUpdated"], got["lastDirty"]) == (1, 1732610000123, 1732610000000)
    assert got["lease"] == {
        "renewalIntervalInSecs": 30,
        "durationInSecs": 90,
        "registrationTimestamp": 1,
        "lastRenewalTimestamp": 2,
        "evictionTimestamp": 0,
        "serviceUpTimestamp": 0,
    }
    assert got["metadata"] == {"management.port": "8080"}
    assert (got["status"], got["overriddenstatus"], got["coordinating"]) == ("DOWN", "OUT_OF_SERVICE", "false")
    assert [child.tag for child in root] == [
        "overriddenstatus" if key == "overriddenStatus" else key for key in FULL_ORDER
    ]
    assert root.findtext("actionType") == "ADDED"
    assert dc_metadata(root) == {"instance-id": "i-1"}


def dc_metadata(root: ET.Element) -> dict[str, str | None]:
    return {child.tag: child.text for child in root.find("dataCenterInfo/metadata") or []}


def test_xml_empty_metadata_carries_class() -> None:
    root = ET.fromstring(render_instance(view(info()), "xml"))
    metadata = root.find("metadata")
    assert metadata is not None and len(metadata) == 0
    assert metadata.attrib == {"class": EMPTY_MAP_CLASS}


def test_xml_metadata_keys_are_escaped_to_valid_names() -> None:
    keys = {"my_key": "a", "a:b": "b", "1st": "c", "with space": "d", "é": "e", "$x": "f", "<&>": "g", "😀": "h"}
    root = ET.fromstring(render_instance(view(info(metadata=keys)), "xml"))
    tags = [child.tag for child in root.find("metadata") or []]
    assert tags[0] == "my__key"
    assert all(tag.isascii() for tag in tags)
    assert len(tags) == len(keys)


def test_xml_render_replaces_characters_xml_cannot_carry() -> None:
    record = info(metadata={"k": "bell\x07"}, home_page_url="lone\ud800")
    root = ET.fromstring(render_instance(view(record), "xml"))
    assert root.findtext("metadata/k") == "bell\ufffd"
    assert root.findtext("homePageUrl") == "lone\ufffd"


def test_render_application_xml() -> None:
    root = ET.fromstring(render_application("ORDERS", [view(info()), view(info(instance_id="b"))], "xml"))
    assert root.tag == "application" and root.findtext("name") == "ORDERS"
    assert [i.findtext("instanceId") for i in root.findall("instance")] == ["orders-1:8080", "b"]


def test_render_applications_xml() -> None:
    views = [view(info(app="ORDERS")), view(info(app="CART", instance_id="c1", status=Status.DOWN))]
    root = ET.fromstring(render_applications(views, 1, "DOWN_1_UP_1_", "xml"))
    assert root.tag == "applications"
    assert [child.tag for child in root][:2] == ["versions__delta", "apps__hashcode"]
    assert (root.findtext("versions__delta"), root.findtext("apps__hashcode")) == ("1", "DOWN_1_UP_1_")
    assert [a.findtext("name") for a in root.findall("application")] == ["CART", "ORDERS"]
    for instance in root.iter("instance"):
        read_like_py_eureka_client(instance)


def test_render_applications_xml_empty() -> None:
    root = ET.fromstring(render_applications([], 2, "", "xml"))
    assert [child.tag for child in root] == ["versions__delta", "apps__hashcode"]


# ---------------------------------------------------------------------------------------------------------------
# Round trips: what we render, a client could send back and we would store the same record


def xml_safe_text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    # \r is excluded: XML parsers normalise it to \n, a loss Eureka's XML has too.
    chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff")
    return st.text(chars, min_size=min_size, max_size=max_size)


NAME = st.text(st.sampled_from("abcXYZ019-_.:$@é"), min_size=1, max_size=12)
MAYBE_TEXT = st.none() | xml_safe_text()
STATUSES = st.sampled_from(list(Status))
TIMESTAMP = st.integers(0, 2**62)
SECONDS = st.none() | st.integers(1, 100_000).map(float)


@st.composite
def instances(draw: st.DrawFn) -> InstanceInfo:
    app = draw(st.text(st.sampled_from("ABCXYZ019-_."), min_size=1, max_size=10))
    metadata_key = xml_safe_text(1, 12).filter(lambda k: k != "@class")
    return InstanceInfo(
        app=app,
        instance_id=draw(xml_safe_text(1)),
        host_name=draw(xml_safe_text(1)),
        ip_addr=draw(NAME),
        status=draw(STATUSES),
        overridden_status=draw(STATUSES),
        port=draw(st.integers(0, 65535)),
        port_enabled=draw(st.booleans()),
        secure_port=draw(st.integers(0, 65535)),
        secure_port_enabled=draw(st.booleans()),
        country_id=draw(st.integers(-(2**31), 2**31 - 1)),
        data_center_class=draw(xml_safe_text()),
        data_center_name=draw(st.sampled_from(["MyOwn", "Amazon", "Netflix"])),
        data_center_metadata=draw(st.dictionaries(metadata_key, xml_safe_text(), max_size=3)),
        renewal_interval_s=draw(SECONDS),
        lease_duration_s=draw(SECONDS),
        service_up_timestamp=draw(TIMESTAMP),
        metadata=draw(st.dictionaries(metadata_key, xml_safe_text(), max_size=5)),
        app_group_name=draw(MAYBE_TEXT),
        home_page_url=draw(MAYBE_TEXT),
        status_page_url=draw(MAYBE_TEXT),
        health_check_url=draw(MAYBE_TEXT),
        secure_health_check_url=draw(MAYBE_TEXT),
        vip_address=draw(MAYBE_TEXT),
        secure_vip_address=draw(MAYBE_TEXT),
        sid=draw(MAYBE_TEXT.filter(lambda s: s not in ("na", "unknown"))),
        asg_name=draw(MAYBE_TEXT),
        last_dirty_timestamp=draw(TIMESTAMP),
        last_updated_timestamp=draw(TIMESTAMP),
    )


def lease_of(record: InstanceInfo) -> LeaseTimes:
    """A rendered lease of 0 seconds reads back as "node default", i.e. None."""
    return LeaseTimes(record.renewal_interval_s or 0.0, record.lease_duration_s or 0.0, 5, 6)


@pytest.mark.parametrize("fmt", ["json", "xml"])
@settings(max_examples=150, deadline=None)
@given(record=instances(), action=st.none() | st.sampled_from(["ADDED", "MODIFIED", "DELETED"]))
def test_round_trip(fmt: str, record: InstanceInfo, action: str | None) -> None:
    body = render_instance(InstanceView(record, lease_of(record), action), fmt)
    parsed = parse_register(body, f"application/{fmt}", record.app.lower(), record.last_updated_timestamp)
    assert parsed == record.replace(registered_ms=record.last_updated_timestamp)  # the codec stamps it


@settings(max_examples=50, deadline=None)
@given(records=st.lists(instances(), max_size=4))
def test_applications_xml_is_always_readable_by_py_eureka_client(records: list[InstanceInfo]) -> None:
    views = [InstanceView(r, lease_of(r)) for r in records]
    root = ET.fromstring(render_applications(views, 1, reconcile_hashcode(r.status for r in records), "xml"))
    instances_read = [read_like_py_eureka_client(i) for i in root.findall("application/instance")]
    assert len(instances_read) == len(records)
    assert sorted(a.findtext("name") or "" for a in root.findall("application")) == sorted({r.app for r in records})
