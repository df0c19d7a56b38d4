"""Eureka's JSON wire format and apreg's change events: the only module that knows field names.

Parsing is lenient the way Eureka's own decoder is (numbers or strings, a single instance or a list, the
`@class` marker inside metadata), because the client must read any Eureka-compatible server.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ._model import Instance, Registration

DEFAULT_DATA_CENTER = {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
ACTIONS_UPSERT = frozenset({"register", "modify", "status"})
ACTIONS_REMOVE = frozenset({"cancel", "evict"})


@dataclass(frozen=True, slots=True)
class Change:
    """One event of the server's change stream (GET /v1/watch, `event: change`)."""

    seq: int
    app: str
    instance_id: str
    action: str
    instance: Instance | None


def _as_int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(value)


def _port(value: Any) -> tuple[int, bool]:
    """Eureka writes ports as {"$": 8080, "@enabled": "true"}; plain numbers are accepted too."""
    if isinstance(value, Mapping):
        return _as_int(value.get("$")), str(value.get("@enabled", "true")).lower() == "true"
    return _as_int(value), value is not None


def parse_instance(data: Mapping[str, Any]) -> Instance:
    """Build an Instance from Eureka's JSON InstanceInfo; raises ValueError if it is unusable."""
    try:
        app = str(data["app"]).upper()
        instance_id = str(data.get("instanceId") or data["hostName"])
        port, _ = _port(data.get("port"))
        secure_port, secure_enabled = _port(data.get("securePort"))
        metadata = data.get("metadata") or {}
        return Instance(
            app=app,
            instance_id=instance_id,
            host_name=str(data.get("hostName") or data.get("ipAddr") or ""),
            ip_addr=str(data.get("ipAddr") or data.get("hostName") or ""),
            port=port,
            status=str(data.get("status") or "UNKNOWN").upper(),
            metadata={str(k): str(v) for k, v in metadata.items() if k != "@class"},
            secure_port=secure_port if secure_enabled and "securePort" in data else None,
            vip_address=data.get("vipAddress"),
            last_dirty_timestamp=_as_int(data.get("lastDirtyTimestamp")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed instance: {exc!r}") from exc


def parse_applications(document: Mapping[str, Any]) -> tuple[str, list[tuple[str, Instance]]]:
    """Read GET apps or apps/delta: the registry's `apps__hashcode` and (actionType, instance) pairs.

    actionType is "" when absent (a full fetch need not carry it).
    """
    entries: list[tuple[str, Instance]] = []
    try:
        root = document["applications"]
        hashcode = str(root.get("apps__hashcode") or "")
        apps = root.get("application") or []
        for app in [apps] if isinstance(apps, Mapping) else apps:
            instances = app.get("instance") or []
            for raw in [instances] if isinstance(instances, Mapping) else instances:
                entries.append((str(raw.get("actionType") or "").upper(), parse_instance(raw)))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed applications document: {exc!r}") from exc
    return hashcode, entries


def parse_change(data: str) -> Change:
    """Decode the JSON `data` of a change event; raises ValueError if it is unusable."""
    try:
        event = json.loads(data)
        raw = event.get("instance")
        return Change(
            seq=int(event["seq"]),
            app=str(event["app"]).upper(),
            instance_id=str(event["instance_id"]),
            action=str(event["action"]),
            instance=parse_instance(raw) if raw else None,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed change event: {exc!r}") from exc


def reconcile_hash(statuses: Iterable[str]) -> str:
    """Eureka's apps__hashcode: per-status counts over all instances, statuses sorted, "STATUS_count_" each."""
    counts = Counter(statuses)
    return "".join(f"{status}_{counts[status]}_" for status in sorted(counts))


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def registration_body(reg: Registration) -> dict[str, Any]:
    """The POST apps/{APP} body, shaped as Eureka's Java client sends it."""
    vip = reg.vip_address or reg.app.lower()
    instance: dict[str, Any] = {
        "instanceId": reg.instance_id,
        "hostName": reg.host_name,
        "app": reg.app,
        "ipAddr": reg.ip_addr,
        "status": reg.status,
        "overriddenStatus": reg.overridden_status or "UNKNOWN",
        "port": {"$": reg.port, "@enabled": "true"},
        "securePort": {"$": reg.secure_port or 443, "@enabled": "true" if reg.secure_port else "false"},
        "countryId": 1,
        "dataCenterInfo": dict(DEFAULT_DATA_CENTER),
        "leaseInfo": {
            "renewalIntervalInSecs": _seconds(reg.renewal_interval),
            "durationInSecs": _seconds(reg.lease_duration),
        },
        "metadata": dict(reg.metadata),
        "homePageUrl": f"http://{reg.host_name}:{reg.port}/",
        "vipAddress": vip,
        "secureVipAddress": vip,
        "lastUpdatedTimestamp": str(reg.last_dirty_timestamp),
        "lastDirtyTimestamp": str(reg.last_dirty_timestamp),
    }
    return {"instance": instance}
