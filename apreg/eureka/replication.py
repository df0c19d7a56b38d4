"""Eureka's peer replication batches (`POST {serviceUrl}peerreplication/batch/`), parsed and rendered.

Shapes from Netflix/eureka's eureka-core: `PeerReplicationResource`, `ReplicationInstance`,
`ReplicationInstanceResponse`, `ReplicationTaskProcessor`. A batch is `{"replicationList": [item, ...]}`, an item
`{"appName", "id", "lastDirtyTimestamp", "overriddenStatus", "status", "instanceInfo", "action"}` (only a Register
carries `instanceInfo`); the answer is `{"responseList": [{"statusCode", "responseEntity"}, ...]}`, one per item in
order. Java peers send at most 250 items a batch. Pure: no I/O, time comes in as `now_ms`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, Sequence

from apreg.core.instance import InstanceInfo, Status

from .codec import CodecError, parse_instance, parse_status, parse_timestamp

MAX_BATCH_ITEMS = 1_000  # a Java peer sends up to 250; more is not a peer of ours
REPLICATION_HEADER = "x-netflix-discovery-replication"  # "true" on every request a Java peer forwards
BATCH_PATH = "peerreplication/batch/"


class Action(str, Enum):
    """Eureka's `PeerAwareInstanceRegistryImpl.Action` names that a batch item may carry."""

    REGISTER = "Register"
    HEARTBEAT = "Heartbeat"
    CANCEL = "Cancel"
    STATUS_UPDATE = "StatusUpdate"
    DELETE_STATUS_OVERRIDE = "DeleteStatusOverride"


@dataclass(frozen=True, slots=True)
class Item:
    """One replicated operation, validated."""

    action: Action
    app: str  # upper-case, as apreg keys instances
    instance_id: str
    last_dirty_ms: int | None = None
    status: Status | None = None
    overridden_status: Status | None = None
    instance: InstanceInfo | None = None  # Register only


@dataclass(frozen=True, slots=True)
class Answer:
    """An item's answer: an HTTP status and, for a 409 to a heartbeat, the receiver's newer instance."""

    status: int
    entity: dict[str, Any] | None = None


def parse_batch(body: bytes, now_ms: int) -> list[Item | CodecError]:
    """The items of a batch, each parsed on its own: a bad item is its own error, never the whole batch's.
    Raises CodecError only when the envelope itself is unusable."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:
        raise CodecError("malformed_json", f"body is not valid UTF-8 JSON: {exc}") from None
    items = doc.get("replicationList") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise CodecError("missing_field", 'body must be {"replicationList": [...]}')
    if len(items) > MAX_BATCH_ITEMS:
        raise CodecError("batch_too_large", f"at most {MAX_BATCH_ITEMS} items per batch, got {len(items)}")
    out: list[Item | CodecError] = []
    for raw in items:
        try:
            out.append(parse_item(raw, now_ms))
        except CodecError as exc:
            out.append(exc)
    return out


def parse_item(raw: Any, now_ms: int) -> Item:
    if not isinstance(raw, dict):
        raise CodecError("malformed_item", "a replication item must be an object")
    try:
        action = Action(raw.get("action"))
    except ValueError:
        raise CodecError("unknown_action", f"action must be one of {', '.join(a.value for a in Action)}, got "
                                           f"{raw.get('action')!r}") from None
    app, instance_id = raw.get("appName"), raw.get("id")
    if not isinstance(app, str) or not app or not isinstance(instance_id, str) or not instance_id:
        raise CodecError("missing_field", "appName and id must be non-empty strings")
    instance = None
    if action is Action.REGISTER:
        instance = parse_instance(raw.get("instanceInfo"), app, now_ms)
        if instance.instance_id != instance_id:
            raise CodecError("id_mismatch", f"instanceInfo is {instance.instance_id!r}, the item {instance_id!r}")
    return Item(action, app.upper(), instance_id,
                parse_timestamp(raw.get("lastDirtyTimestamp"), "lastDirtyTimestamp"),
                parse_status(raw.get("status"), required=action is Action.STATUS_UPDATE, name="status"),
                parse_status(raw.get("overriddenStatus"), required=False, name="overriddenStatus"), instance)


def render_answers(answers: Sequence[Answer]) -> bytes:
    return json.dumps({"responseList": [
        {"statusCode": a.status, **({"responseEntity": a.entity} if a.entity is not None else {})}
        for a in answers]}, separators=(",", ":")).encode()


def render_batch(items: Sequence[dict[str, Any]]) -> bytes:
    """A batch from items already in Eureka's shape (see `item_dict`)."""
    return json.dumps({"replicationList": list(items)}, separators=(",", ":")).encode()


def item_dict(action: Action, info: InstanceInfo, instance: dict[str, Any] | None = None) -> dict[str, Any]:
    """An item as `ReplicationTaskProcessor` builds it: status, override and dirty time from the instance."""
    item: dict[str, Any] = {"appName": info.app, "id": info.instance_id, "action": action.value,
                            "status": info.status.value, "overriddenStatus": info.overridden_status.value,
                            "lastDirtyTimestamp": info.last_dirty_timestamp}
    if instance is not None:
        item["instanceInfo"] = instance
    return item


def parse_answers(body: bytes, expected: int) -> list[Answer]:
    """A peer's answer to a batch of `expected` items; raises CodecError if it is not one answer per item."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
        answers = doc["responseList"]
        parsed = [Answer(int(a["statusCode"]), a.get("responseEntity")) for a in answers]
    except (ValueError, KeyError, TypeError, RecursionError, AttributeError) as exc:
        raise CodecError("malformed_answer", f"not a batch answer: {exc}") from None
    if len(parsed) != expected:
        raise CodecError("malformed_answer", f"{len(parsed)} answers to {expected} items")
    return parsed


def parse_applications(body: bytes, now_ms: int) -> list[InstanceInfo | CodecError]:
    """A Java peer's `GET apps` (JSON) as instances, each validated on its own as a Register's `instanceInfo`;
    raises CodecError only when the document itself is unusable. Eureka's JSON gives a one-element list or the
    element itself, so both are taken."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
        apps = doc["applications"].get("application", [])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise CodecError("malformed_json", f"not an applications document: {exc}") from None
    out: list[InstanceInfo | CodecError] = []
    for app in _listed(apps):
        name = app.get("name") if isinstance(app, dict) else None
        if not isinstance(name, str) or not name:
            out.append(CodecError("missing_field", "an application without a name"))
            continue
        for raw in _listed(app.get("instance", [])):
            try:
                out.append(parse_instance(raw, name, now_ms))
            except CodecError as exc:
                out.append(exc)
    return out


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
