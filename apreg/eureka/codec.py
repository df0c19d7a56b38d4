"""Parsing Eureka's JSON and XML wire formats (with render.py, the only modules that know them).

Parsing is as lenient as Eureka's own decoder about spelling and scalar types (clients in the wild disagree on
both) but rejects anything that would store wrong data, so the core only ever sees a valid `InstanceInfo`.
Rendering lives in `render.py`; what both share (field tables, the rendered view) in `views.py`.
"""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from typing import Any, Mapping

from apreg.core.instance import InstanceInfo, Status
from apreg.core.lease import MAX_LEASE_S, MIN_LEASE_S, valid_lease_s
from apreg.server.errors import CodecError

from .views import AUTO_STRINGS, XML_ILLEGAL

MAX_NAME_CHARS = 256  # app, instance id, host name, ip address, metadata keys
MAX_TEXT_CHARS = 4096  # URLs, VIPs and every other string, metadata values included
MAX_METADATA_ENTRIES = 256
MAX_METADATA_CHARS = 256 * 1024  # keys and values of one metadata map together (a quarter of the body limit)
MAX_METADATA_PARAMS = 64  # entries in one `PUT .../metadata?k=v` update
MAX_TIMESTAMP_MS = 2**63 - 1  # Java long

_INTEGER = re.compile(r"-?[0-9]{1,19}")
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_XML_NAME_ESCAPE = re.compile(r"_(_|-|\.[0-9a-fA-F]{4})")


# ---------------------------------------------------------------------------------------------------------------
# Parsing


def parse_register(body: bytes, content_type: str | None, path_app: str, now_ms: int) -> InstanceInfo:
    """Decode and validate a register body (`{"instance": {...}}` or `<instance>`) for `POST apps/{path_app}`."""
    raw = _load_json(body) if _body_format(body, content_type) == "json" else _load_xml(body)
    return _build_instance(raw, path_app, now_ms)


def parse_instance(raw: Any, path_app: str, now_ms: int) -> InstanceInfo:
    """An instance already out of its envelope (a peer batch's `instanceInfo`), validated as a register body."""
    if not isinstance(raw, dict):
        raise CodecError("missing_field", "instanceInfo must be an object")
    return _build_instance(raw, path_app, now_ms)


def parse_status(value: str | None, *, required: bool, name: str = "value") -> Status | None:
    """A status from a query or body; case-insensitive like Eureka, but unknown values are refused, not UNKNOWN."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CodecError("missing_field", f"{name} is required")
        return None
    if isinstance(value, str):
        try:
            return Status(value.strip().upper())
        except ValueError:
            pass
    allowed = ", ".join(s.value for s in Status)
    raise CodecError("invalid_status", f"{name} must be one of {allowed}, got {_show(value)}")


def parse_metadata_update(params: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """The query of `PUT .../metadata?k=v` for an instance whose metadata is `current`, checked as registered
    metadata is (no empty keys, no control characters, bounded sizes), and refused if the instance's metadata
    afterwards is more than a registration takes: updates cannot add up past the bounds one by one."""
    if len(params) > MAX_METADATA_PARAMS:
        raise CodecError("invalid_metadata", f"at most {MAX_METADATA_PARAMS} metadata entries per update")
    changes = _string_map(dict(params), "metadata")
    _check_metadata_bounds({**current, **changes}, "metadata after this update")
    return changes


def parse_timestamp(value: str | int | float | None, name: str) -> int | None:
    """Epoch milliseconds from a query parameter or body field; absent or empty means None."""
    if value is None or value == "":
        return None
    number = _integer(value, name, "invalid_timestamp")
    if not 0 <= number <= MAX_TIMESTAMP_MS:
        raise CodecError("invalid_timestamp", f"{name} must be a non-negative epoch millisecond count")
    return number


def _body_format(body: bytes, content_type: str | None) -> str:
    """JSON or XML by Content-Type; only a missing Content-Type makes us sniff the body."""
    media = (content_type or "").lower()
    if "json" in media:
        return "json"
    if "xml" in media:
        return "xml"
    if not media.strip():
        head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if head == b"{":
            return "json"
        if head == b"<":
            return "xml"
    raise CodecError("unsupported_media_type", f"Content-Type {content_type!r} is neither JSON nor XML")


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CodecError("malformed_json", f"body is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CodecError("malformed_json", 'body must be a JSON object {"instance": {...}}')
    instance = doc.get("instance")
    if not isinstance(instance, dict):
        raise CodecError("missing_field", 'instance: body must be {"instance": {...}}')
    return instance


class _RefuseDoctype(ET.TreeBuilder):
    """Refuses DOCTYPE before expat reads its entity declarations, which shuts out billion-laughs and XXE."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise CodecError("malformed_xml", "DOCTYPE and entity declarations are not accepted")


def _load_xml(body: bytes) -> dict[str, Any]:
    parser = ET.XMLParser(target=_RefuseDoctype())
    try:
        parser.feed(body)
        root = parser.close()
    except (ET.ParseError, LookupError, UnicodeError) as exc:  # the latter two: a bad declared encoding
        raise CodecError("malformed_xml", f"body is not well-formed XML: {exc}") from None
    if root.tag != "instance":
        raise CodecError("malformed_xml", f"root element must be <instance>, got <{_show(root.tag)}>")
    try:
        value = _xml_value(root)
    except RecursionError:
        raise CodecError("malformed_xml", "body is nested too deeply") from None
    return value if isinstance(value, dict) else {}


def _xml_value(elem: ET.Element) -> Any:
    """Map XML onto the JSON shape (attributes as "@name", text beside them as "$") so one validator serves both."""
    children = list(elem)
    if not children and not elem.attrib:
        return elem.text or ""
    out: dict[str, Any] = {"@" + key: value for key, value in elem.attrib.items()}
    for child in children:
        out[_decode_xml_name(child.tag)] = _xml_value(child)
    if not children and elem.text:
        out["$"] = elem.text
    return out


def _build_instance(raw: Mapping[str, Any], path_app: str, now_ms: int) -> InstanceInfo:
    """Validate in Eureka's order (ApplicationResource.addInstance) so the first error matches what Eureka says."""
    host = _required_str(raw, "hostName")
    ip = _required_str(raw, "ipAddr")
    app = _required_str(raw, "app")
    if app.upper() != path_app.upper():
        raise CodecError("app_mismatch", f"app {_show(app)} does not match {_show(path_app)} in the path")
    dc_class, dc_name, dc_metadata = _data_center(raw.get("dataCenterInfo"))
    metadata = _string_map(raw.get("metadata"), "metadata")
    port, port_enabled = _port(raw.get("port"), "port")
    secure_port, secure_port_enabled = _port(raw.get("securePort"), "securePort")
    lease = _lease_info(raw.get("leaseInfo"))
    last_dirty = parse_timestamp(_scalar(raw, "lastDirtyTimestamp"), "lastDirtyTimestamp")
    fields: dict[str, Any] = {
        "app": app.upper(),
        "instance_id": _instance_id(raw, host, metadata, dc_name, dc_metadata),
        "host_name": host,
        "ip_addr": ip,
        "data_center_name": dc_name,
        "data_center_metadata": dc_metadata,
        "metadata": metadata,
        "renewal_interval_s": _seconds(lease.get("renewalIntervalInSecs"), "leaseInfo.renewalIntervalInSecs"),
        "lease_duration_s": _seconds(lease.get("durationInSecs"), "leaseInfo.durationInSecs"),
        "last_dirty_timestamp": now_ms if last_dirty is None else last_dirty,
        "last_updated_timestamp": now_ms,
        "registered_ms": now_ms,
    }
    optional: dict[str, Any] = {
        "status": parse_status(raw.get("status"), required=False, name="status"),
        "overridden_status": _overridden_status(raw),
        "port": port,
        "port_enabled": port_enabled,
        "secure_port": secure_port,
        "secure_port_enabled": secure_port_enabled,
        "country_id": _country_id(raw.get("countryId")),
        "data_center_class": dc_class,
        "service_up_timestamp": parse_timestamp(
            _scalar(lease, "serviceUpTimestamp", "leaseInfo."), "leaseInfo.serviceUpTimestamp"
        ),
        "sid": _optional_str(raw, "sid"),
        "asg_name": _optional_str(raw, "asgName"),
    }
    optional.update((attr, _optional_str(raw, wire)) for wire, attr in AUTO_STRINGS)
    fields.update((key, value) for key, value in optional.items() if value is not None)
    return InstanceInfo.from_dict(fields)


def _instance_id(
    raw: Mapping[str, Any], host: str, metadata: Mapping[str, str], dc_name: str, dc_metadata: Mapping[str, str]
) -> str:
    """Eureka's InstanceInfo.getId, plus Spring Cloud's fallback to `metadata.instanceId` (host-prefixed)."""
    instance_id = _optional_str(raw, "instanceId", MAX_NAME_CHARS)
    if not instance_id:
        instance_id = metadata.get("instanceId", "")
        if instance_id and not instance_id.startswith(host):
            instance_id = f"{host}:{instance_id}"
    if not instance_id and dc_name == "Amazon":
        instance_id = dc_metadata.get("instance-id", "")
    instance_id = instance_id or host
    _check_text(instance_id, "instanceId", MAX_NAME_CHARS)
    return instance_id


def _overridden_status(raw: Mapping[str, Any]) -> Status | None:
    """Eureka writes `overriddenStatus` but once wrote `overriddenstatus` (NE#1051); py-eureka-client still does."""
    for key in ("overriddenStatus", "overriddenstatus"):
        status = parse_status(raw.get(key), required=False, name=key)
        if status is not None:
            return status
    return None


def _data_center(value: Any) -> tuple[str | None, str, dict[str, str]]:
    if value is None or value == "":
        raise CodecError("missing_field", "dataCenterInfo is required")
    if not isinstance(value, dict):
        raise CodecError("invalid_field", "dataCenterInfo must be an object")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise CodecError("missing_field", "dataCenterInfo.name is required")
    _check_text(name, "dataCenterInfo.name", MAX_NAME_CHARS)
    dc_class = _optional_str(value, "@class", MAX_TEXT_CHARS, "dataCenterInfo.")
    return dc_class, name, _string_map(value.get("metadata"), "dataCenterInfo.metadata")


def _lease_info(value: Any) -> Mapping[str, Any]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise CodecError("invalid_field", "leaseInfo must be an object")
    return value


def _port(value: Any, name: str) -> tuple[int | None, bool | None]:
    """`{"$": 8080, "@enabled": "true"}`, `<port enabled="true">8080</port>` or a bare number/string."""
    if value is None:
        return None, None
    number, enabled = (value.get("$"), value.get("@enabled")) if isinstance(value, dict) else (value, None)
    port = _integer(number, name, "invalid_port")
    if not 0 <= port <= 65535:
        raise CodecError("invalid_port", f"{name} must be an integer 0..65535, got {port}")
    return port, None if enabled is None else _boolean(enabled, f"{name}.@enabled", "invalid_port")


def _country_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    country = _integer(value, "countryId", "invalid_field")
    if not -(2**31) <= country < 2**31:
        raise CodecError("invalid_field", "countryId must fit a Java int")
    return country


def _seconds(value: Any, name: str) -> float | None:
    """A lease duration in seconds; 0 or absent means "use the node's default", as in Eureka's LeaseInfo."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value) if abs(value) <= MAX_LEASE_S else math.inf  # float() overflows on huge ints
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        seconds = float(value)
    else:
        raise CodecError("invalid_field", f"{name} must be a number of seconds, got {_show(value)}")
    if seconds != 0 and not valid_lease_s(seconds):
        raise CodecError("invalid_field", f"{name} must be 0 (the node's default) or between {MIN_LEASE_S} and "
                                          f"{MAX_LEASE_S:.0f} seconds, got {_show(value)}")
    return seconds or None


def _string_map(value: Any, name: str) -> dict[str, str]:
    """Metadata: a flat string map. Scalars are stringified the way Java would; structure is refused."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise CodecError("invalid_metadata", f"{name} must be an object of strings")
    out: dict[str, str] = {}
    for key, item in value.items():
        if key == "@class" or item is None:  # Jackson's type hint for Java maps, and JSON nulls
            continue
        if not key:
            raise CodecError("invalid_metadata", f"{name} has an empty key")
        _check_text(key, f"{name} key {_show(key)}", MAX_NAME_CHARS, "invalid_metadata")
        out[key] = _metadata_value(item, f"{name}.{key}")
    _check_metadata_bounds(out, name)
    return out


def _check_metadata_bounds(metadata: Mapping[str, str], name: str) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise CodecError("invalid_metadata", f"{name} has {len(metadata)} entries, more than {MAX_METADATA_ENTRIES}")
    chars = sum(len(key) + len(value) for key, value in metadata.items())
    if chars > MAX_METADATA_CHARS:
        raise CodecError("too_long", f"{name} holds {chars} characters of keys and values, more than "
                         f"{MAX_METADATA_CHARS}")


def _metadata_value(value: Any, name: str) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise CodecError("invalid_metadata", f"{name} must be a string, not {type(value).__name__}")
    _check_text(text, name, MAX_TEXT_CHARS, "invalid_metadata")
    return text


def _required_str(raw: Mapping[str, Any], key: str) -> str:
    value = _optional_str(raw, key, MAX_NAME_CHARS)
    if not value:
        raise CodecError("missing_field", f"{key} is required")
    return value


def _optional_str(raw: Mapping[str, Any], key: str, limit: int = MAX_TEXT_CHARS, prefix: str = "") -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CodecError("invalid_field", f"{prefix}{key} must be a string, got {_show(value)}")
    _check_text(value, prefix + key, limit)
    return value


def _scalar(raw: Mapping[str, Any], key: str, prefix: str = "") -> str | int | float | None:
    """A timestamp field: a number or a string, never an object or list."""
    value = raw.get(key)
    if value is not None and not isinstance(value, (str, int, float)):
        raise CodecError("invalid_timestamp", f"{prefix}{key} must be a number, got {_show(value)}")
    return value


def _check_text(value: str, name: str, limit: int, error: str = "invalid_field") -> None:
    """Bound sizes, and refuse characters that XML cannot carry so JSON and XML clients see the same data."""
    if len(value) > limit:
        raise CodecError("too_long", f"{name} is longer than {limit} characters")
    if XML_ILLEGAL.search(value):
        raise CodecError(error, f"{name} contains control characters or lone surrogates")


def _integer(value: Any, name: str, error: str) -> int:
    """Numbers or decimal strings, as Jackson coerces them; booleans and fractions are refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise CodecError(error, f"{name} must be an integer, got {_show(value)}")


def _boolean(value: Any, name: str, error: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise CodecError(error, f"{name} must be true or false, got {_show(value)}")


def _show(value: object) -> str:
    """A short repr for error details: client input can be huge."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode_xml_name(name: str) -> str:
    """Inverse of `_encode_xml_name`; a lone `_` that is not an escape is kept as written."""
    if "_" not in name:
        return name
    decoded = _XML_NAME_ESCAPE.sub(_decode_escape, name)
    return decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _decode_escape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code == "_":
        return "_"
    if code == "-":
        return "$"
    return chr(int(code[1:], 16))
