"""Rendering Eureka's JSON and XML documents, exactly as Eureka's server codecs write them (eureka-facts 1.6/1.7).

Clients such as py-eureka-client parse strictly and crash on any deviation, so the shapes are fixed. Documents
are made of pieces (an applications header, an application header, a run of instances, the closing tags) so
that the whole-registry cache (`apreg.server.documents`) can render runs of instances once and join them; the
one-shot renderers below join the same pieces, so both give identical bytes. JSON is `instance_dict` through
json.dumps; XML has its own writer with the same fields in the same order (`_instance_xml`).

XML is written as text rather than through ElementTree: at 100,000 instances ElementTree's 85 us per instance
is 8.5 s per full document, the text writer is several times faster. Escaping follows ElementTree's rules
(`&<>` in text; `&<>"` and CR, LF, TAB in attributes), which a test checks against ElementTree itself.
"""
from __future__ import annotations

import functools
import json
import math
import re
import string
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from apreg.core.instance import Status

from .views import AUTO_STRINGS, XML_ILLEGAL, InstanceView

FORMATS = ("json", "xml")
EMPTY_MAP_CLASS = "java.util.Collections$EmptyMap"

# Eureka omits these placeholder sids on output.
_HIDDEN_SIDS = (None, "na", "unknown")
_XML_NAME_START = frozenset(string.ascii_letters)
_XML_NAME_CHAR = _XML_NAME_START | frozenset(string.digits + "-.")
# Anything that needs escaping or replacing in element text: most values have none, and one scan says so.
_XML_SPECIAL = re.compile("[&<>]|" + XML_ILLEGAL.pattern)
_XML_ATTRIBUTE_SPECIAL = re.compile('[&<>"\r\n\t]|' + XML_ILLEGAL.pattern)
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;",
                                    "\n": "&#10;", "\t": "&#09;"})


def hashcode(counts: Mapping[Status, int]) -> str:
    """Eureka's apps__hashcode from per-status counts: keys sorted as strings, e.g. "DOWN_1_UP_2_"; "" if empty."""
    named = {status.value: count for status, count in counts.items() if count}
    return "".join(f"{name}_{named[name]}_" for name in sorted(named))


def reconcile_hashcode(statuses: Iterable[Status]) -> str:
    """apps__hashcode of a collection of instances' statuses."""
    return hashcode(Counter(statuses))


def wants_json(accept: str | None) -> bool:
    """Eureka answers JSON only when Accept mentions json; no Accept (py-eureka-client) or */* gets XML."""
    return accept is not None and "json" in accept.lower()


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")


# ----- pieces ----------------------------------------------------------------------------------------------------

def instance_dict(view: InstanceView) -> dict[str, Any]:
    """One InstanceInfo in Eureka's JSON shape and field order; the XML writer walks the same dict."""
    info, lease = view.info, view.lease
    out: dict[str, Any] = {
        "instanceId": info.instance_id,
        "hostName": info.host_name,
        "app": info.app,
        "ipAddr": info.ip_addr,
    }
    if info.sid not in _HIDDEN_SIDS:
        out["sid"] = info.sid
    out["status"] = info.status.value
    out["overriddenStatus"] = info.overridden_status.value
    out["port"] = {"$": info.port, "@enabled": _bool_text(info.port_enabled)}
    out["securePort"] = {"$": info.secure_port, "@enabled": _bool_text(info.secure_port_enabled)}
    out["countryId"] = info.country_id
    data_center: dict[str, Any] = {"@class": info.data_center_class, "name": info.data_center_name}
    if info.data_center_metadata:
        data_center["metadata"] = dict(info.data_center_metadata)
    out["dataCenterInfo"] = data_center
    out["leaseInfo"] = {
        "renewalIntervalInSecs": _whole_seconds(lease.renewal_interval_s),
        "durationInSecs": _whole_seconds(lease.duration_s),
        "registrationTimestamp": lease.registration_ms,
        "lastRenewalTimestamp": lease.last_renewal_ms,
        "evictionTimestamp": lease.eviction_ms,
        "serviceUpTimestamp": lease.service_up_ms or info.service_up_timestamp,
    }
    out["metadata"] = dict(info.metadata) if info.metadata else {"@class": EMPTY_MAP_CLASS}
    for wire, attr in AUTO_STRINGS:
        value = getattr(info, attr)
        if value is not None:
            out[wire] = value
    out["isCoordinatingDiscoveryServer"] = "false"
    out["lastUpdatedTimestamp"] = str(info.last_updated_timestamp)
    out["lastDirtyTimestamp"] = str(info.last_dirty_timestamp)
    if view.action is not None:
        out["actionType"] = view.action
    if info.asg_name is not None:
        out["asgName"] = info.asg_name
    return out


def instances_text(views: Iterable[InstanceView], fmt: str) -> str:
    """A run of instances as they sit inside an application (comma-separated in JSON)."""
    if fmt == "json":
        return _json_text([instance_dict(view) for view in views])[1:-1]
    return "".join([_instance_xml(view) for view in views])


def separator(fmt: str) -> str:
    """Between two runs of instances, or two applications."""
    return "," if fmt == "json" else ""


def application_open(name: str, fmt: str) -> str:
    if fmt == "json":
        return '{"name":' + _json_text(name) + ',"instance":['
    return "<application>" + _xml_element("name", name)


def application_close(fmt: str) -> str:
    return "]}" if fmt == "json" else "</application>"


def applications_open(versions_delta: int, apps_hashcode: str, fmt: str) -> str:
    if fmt == "json":
        return ('{"applications":{"versions__delta":' + _json_text(str(versions_delta))
                + ',"apps__hashcode":' + _json_text(apps_hashcode) + ',"application":[')
    return ("<applications>" + _xml_element("versions__delta", str(versions_delta))
            + _xml_element("apps__hashcode", apps_hashcode))


def applications_close(fmt: str) -> str:
    return "]}}" if fmt == "json" else "</applications>"


# ----- whole documents -------------------------------------------------------------------------------------------

def render_instance(view: InstanceView, fmt: str) -> bytes:
    """`GET apps/{APP}/{ID}` and `GET instances/{ID}`: root `instance`."""
    check_format(fmt)
    if fmt == "json":
        return _json_text({"instance": instance_dict(view)}).encode("ascii")
    return _instance_xml(view).encode("utf-8")


def render_application(name: str, views: Sequence[InstanceView], fmt: str) -> bytes:
    """`GET apps/{APP}`: root `application`, instances always a list."""
    check_format(fmt)
    body = application_open(name, fmt) + instances_text(views, fmt) + application_close(fmt)
    return ('{"application":' + body + "}" if fmt == "json" else body).encode("utf-8")


def render_applications(views: Iterable[InstanceView], versions_delta: int, apps_hashcode: str,
                        fmt: str) -> bytes:
    """`GET apps`, `apps/delta`, vips: instances grouped by app, apps sorted by name."""
    check_format(fmt)
    groups: dict[str, list[InstanceView]] = {}
    for view in views:
        groups.setdefault(view.info.app, []).append(view)
    apps = separator(fmt).join(application_open(name, fmt) + instances_text(groups[name], fmt)
                               + application_close(fmt) for name in sorted(groups))
    return (applications_open(versions_delta, apps_hashcode, fmt) + apps + applications_close(fmt)).encode("utf-8")


# ----- XML and JSON text -----------------------------------------------------------------------------------------

def _instance_xml(view: InstanceView) -> str:
    """The XML twin of `instance_dict`, written field by field: a generic walk of the dict costs three times as
    much, and at 100,000 instances that is seconds per document (the ElementTree test keeps the two equal)."""
    info, lease = view.info, view.lease
    sid = "" if info.sid in _HIDDEN_SIDS else _xml_element("sid", info.sid)
    dc_metadata = _metadata_xml(info.data_center_metadata) if info.data_center_metadata else ""
    metadata = info.metadata if info.metadata else {"@class": EMPTY_MAP_CLASS}
    autos = "".join([_xml_element(wire, getattr(info, attr)) for wire, attr in AUTO_STRINGS
                     if getattr(info, attr) is not None])
    action = "" if view.action is None else _xml_element("actionType", view.action)
    asg = "" if info.asg_name is None else _xml_element("asgName", info.asg_name)
    return (
        f"<instance>{_xml_element('instanceId', info.instance_id)}{_xml_element('hostName', info.host_name)}"
        f"{_xml_element('app', info.app)}{_xml_element('ipAddr', info.ip_addr)}{sid}"
        f"<status>{info.status.value}</status><overriddenstatus>{info.overridden_status.value}</overriddenstatus>"
        f'<port enabled="{_bool_text(info.port_enabled)}">{info.port}</port>'
        f'<securePort enabled="{_bool_text(info.secure_port_enabled)}">{info.secure_port}</securePort>'
        f"<countryId>{info.country_id}</countryId>"
        f'<dataCenterInfo class="{_xml_attribute(info.data_center_class)}">'
        f"{_xml_element('name', info.data_center_name)}{dc_metadata}</dataCenterInfo>"
        f"<leaseInfo><renewalIntervalInSecs>{_whole_seconds(lease.renewal_interval_s)}</renewalIntervalInSecs>"
        f"<durationInSecs>{_whole_seconds(lease.duration_s)}</durationInSecs>"
        f"<registrationTimestamp>{lease.registration_ms}</registrationTimestamp>"
        f"<lastRenewalTimestamp>{lease.last_renewal_ms}</lastRenewalTimestamp>"
        f"<evictionTimestamp>{lease.eviction_ms}</evictionTimestamp>"
        f"<serviceUpTimestamp>{lease.service_up_ms or info.service_up_timestamp}</serviceUpTimestamp></leaseInfo>"
        f"{_metadata_xml(metadata)}{autos}<isCoordinatingDiscoveryServer>false</isCoordinatingDiscoveryServer>"
        f"<lastUpdatedTimestamp>{info.last_updated_timestamp}</lastUpdatedTimestamp>"
        f"<lastDirtyTimestamp>{info.last_dirty_timestamp}</lastDirtyTimestamp>{action}{asg}</instance>")


def _metadata_xml(metadata: Mapping[str, str]) -> str:
    """Keys become element names, escaped as XStream does (`_` -> `__`) so they are always valid XML names.

    A key that is empty (only reachable by bypassing the codec) has no XML name and is skipped."""
    attributes = ""
    children = []
    for key, value in metadata.items():
        if key == "@class":
            attributes = f' class="{_xml_attribute(value)}"'
        elif key:
            children.append(_xml_element(_encode_xml_name(key), value))
    body = "".join(children)
    return f"<metadata{attributes}>{body}</metadata>" if body else f"<metadata{attributes} />"


def _xml_element(tag: str, value: object) -> str:
    text = _xml_text(value)
    return f"<{tag}>{text}</{tag}>" if text else f"<{tag} />"


@functools.lru_cache(maxsize=4096)
def _encode_xml_name(key: str) -> str:
    """XStream's XmlFriendlyNameCoder scheme: `_`->`__`, `$`->`_-`, anything else not plainly safe -> `_.hhhh`.

    Only ASCII letters, digits, `-` and `.` pass through (no `:`, which XML readers take for a namespace
    prefix); other characters are written as UTF-16 code units, as Java would.
    """
    parts: list[str] = []
    for index, char in enumerate(key):
        if char == "_":
            parts.append("__")
        elif char == "$":
            parts.append("_-")
        elif char in (_XML_NAME_CHAR if index else _XML_NAME_START):
            parts.append(char)
        else:
            units = char.encode("utf-16-be", "surrogatepass")
            parts.extend(f"_.{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))
    return "".join(parts)


def _xml_text(value: object) -> str:
    """Escaped element text; characters XML cannot carry become U+FFFD so output stays well-formed."""
    if not isinstance(value, str):
        return str(value)  # numbers: nothing to escape
    if _XML_SPECIAL.search(value) is None:
        return value  # the common case, one scan
    return XML_ILLEGAL.sub("\ufffd", value).translate(_TEXT_ESCAPES)


def _xml_attribute(value: object) -> str:
    text = str(value)
    if _XML_ATTRIBUTE_SPECIAL.search(text) is None:
        return text
    return XML_ILLEGAL.sub("\ufffd", text).translate(_ATTRIBUTE_ESCAPES)


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _whole_seconds(seconds: float) -> int:
    """leaseInfo carries whole seconds (py-eureka-client calls int() on them); round up so 0.5 s does not read as 0."""
    return math.ceil(seconds)


def _json_text(value: object) -> str:
    # ensure_ascii keeps lone surrogates (legal in JSON, not in UTF-8) encodable.
    return json.dumps(value, separators=(",", ":"))
