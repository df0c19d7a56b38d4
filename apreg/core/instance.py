"""Instance records as Eureka's InstanceInfo describes them, and the status rules applied to them.

`InstanceInfo` is immutable: a versioned write produces a new one, which is what lets records be shared between
the registry, the change feed and the delta window without copying. For the same reason every instance without
metadata shares one empty read-only mapping (`EMPTY`) instead of holding an empty dict of its own.
"""
from __future__ import annotations

import dataclasses
import operator
import sys
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, TypeVar

from .lease import MAX_LEASE_S, MIN_LEASE_S, valid_lease_s

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class Status(str, Enum):
    """Eureka's InstanceStatus; the value is the wire spelling."""

    UP = "UP"
    DOWN = "DOWN"
    STARTING = "STARTING"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"
    UNKNOWN = "UNKNOWN"


DEFAULT_DATA_CENTER_CLASS = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"

# Statuses an instance may report about itself that the server trusts over any override (Eureka's DownOrStartingRule).
SELF_REPORTED_WINS = frozenset({Status.DOWN, Status.STARTING, Status.UNKNOWN})


EMPTY: Mapping[str, str] = MappingProxyType({})

# Values that repeat across the instances of an app or a fleet. Decoders keep one shared copy of each (as Eureka's
# own deserializer interns strings), which matters with 100,000 instances in memory: app names, VIPs, data-centre
# names, ports and whole metadata maps are usually the same for every instance of an app.
SHARED_STRING_FIELDS = ("app", "vip_address", "secure_vip_address", "app_group_name", "asg_name",
                        "data_center_class", "data_center_name")
SHARED_INT_FIELDS = ("port", "secure_port", "country_id")
MAX_SHARED_VALUES = 4096  # distinct maps and numbers kept; the cache starts over when full

_shared: dict[object, object] = {}


def _empty() -> Mapping[str, str]:
    return EMPTY


def _remember(key: object, value: T) -> T:
    if len(_shared) >= MAX_SHARED_VALUES:
        _shared.clear()
    _shared[key] = value
    return value


def shared_map(mapping: Mapping[K, V]) -> Mapping[K, V]:
    """One read-only copy of each distinct small mapping (metadata maps, version vectors)."""
    if not mapping:
        return EMPTY  # type: ignore[return-value]
    items = tuple(mapping.items())
    found = _shared.get(items)
    return found if found is not None else _remember(items, MappingProxyType(dict(items)))  # type: ignore


class InstanceKey(NamedTuple):
    """The identity of an instance: app names are case-insensitive, so the app is stored upper-case.

    A NamedTuple: every replicated record is looked up by key in several dicts, and a tuple's hash and equality
    run in C (a dataclass's generated ones run Python code per lookup).
    """

    app: str
    instance_id: str

    @staticmethod
    def of(app: str, instance_id: str) -> "InstanceKey":
        return InstanceKey(app.upper(), instance_id)


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """Eureka's InstanceInfo fields that clients send and read back.

    Lease timestamps (registration, last renewal) are not here: they belong to the node's lease bookkeeping,
    and the renderer fills them in from it.
    """

    app: str
    instance_id: str
    host_name: str
    ip_addr: str
    status: Status = Status.UP
    overridden_status: Status = Status.UNKNOWN
    port: int = 7001
    port_enabled: bool = True
    secure_port: int = 7002
    secure_port_enabled: bool = False
    country_id: int = 1
    data_center_class: str = DEFAULT_DATA_CENTER_CLASS
    data_center_name: str = "MyOwn"
    data_center_metadata: Mapping[str, str] = field(default_factory=_empty)
    renewal_interval_s: float | None = None
    lease_duration_s: float | None = None
    service_up_timestamp: int = 0
    metadata: Mapping[str, str] = field(default_factory=_empty)
    app_group_name: str | None = None
    home_page_url: str | None = None
    status_page_url: str | None = None
    health_check_url: str | None = None
    secure_health_check_url: str | None = None
    vip_address: str | None = None
    secure_vip_address: str | None = None
    sid: str | None = None
    asg_name: str | None = None
    last_dirty_timestamp: int = 0
    last_updated_timestamp: int = 0
    # When the node that took this instance's registration took it (its clock): a re-registration sets it anew,
    # status and metadata changes keep it, so every node can tell `apps/delta`'s ADDED from MODIFIED. Not rendered.
    registered_ms: int = 0

    @property
    def key(self) -> InstanceKey:
        return InstanceKey(self.app, self.instance_id)

    def replace(self, **changes: object) -> "InstanceInfo":
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """Plain types only (for msgpack); the inverse of `from_dict`."""
        out = {name: getattr(self, name) for name in FIELD_NAMES}
        out["status"] = self.status.value
        out["overridden_status"] = self.overridden_status.value
        out["metadata"] = dict(self.metadata)
        out["data_center_metadata"] = dict(self.data_center_metadata)
        return out

    @staticmethod
    def from_dict(data: Mapping[str, object]) -> "InstanceInfo":
        """Rebuild from `to_dict` output (or a decoder's field map); raises KeyError/ValueError/TypeError on
        anything malformed. Fields left out take their defaults."""
        if not _FIELD_SET.issuperset(data):
            raise ValueError(f"unknown instance fields: {sorted(data.keys() - _FIELD_SET)}")
        return InstanceInfo.from_values(list(_in_field_order({**_DEFAULTS, **data})))

    @staticmethod
    def from_values(values: list[Any]) -> "InstanceInfo":
        """Build from the field values in `FIELD_NAMES` order (a version 2 peer frame lists them so); trailing
        fields left out take their defaults. Takes `values` over: the list is changed in place.

        Every replicated instance comes through here (100,000 in a full pull), so the type checks run as one C
        loop over all fields, the field-by-field walk runs only to name what failed, and values that repeat
        across instances are swapped for one shared copy each (as Eureka's deserializer interns strings)."""
        if len(values) < len(FIELD_NAMES):
            values.extend(_DEFAULT_VALUES[len(values):])
        values[_STATUS], values[_OVERRIDDEN] = _status(values[_STATUS]), _status(values[_OVERRIDDEN])
        for at in _MAP_AT:
            mapping = values[at]
            if not isinstance(mapping, (dict, MappingProxyType)) or not (
                _ONLY_STR.issuperset(map(type, mapping)) and _ONLY_STR.issuperset(map(type, mapping.values()))
            ):
                raise TypeError(f"{FIELD_NAMES[at]} must map strings to strings")
            values[at] = shared_map(mapping)
        for at in _SHARED_STRINGS_AT:
            if type(value := values[at]) is str:
                values[at] = sys.intern(value)
        for at in _SHARED_INTS_AT:
            if type(value := values[at]) is int:
                values[at] = _shared.get(value) or _remember(value, value)
        if not all(map(frozenset.__contains__, _ACCEPTED, map(type, values))):
            name, value, accepted = next(item for item in zip(FIELD_NAMES, values, _ACCEPTED)
                                         if type(item[1]) not in item[2])
            wanted = " or ".join(sorted(t.__name__ for t in accepted))
            raise TypeError(f"{name} must be {wanted}, not {type(value).__name__}")
        for name, value in zip(FIELD_NAMES[:4], values):  # app, instance_id, host_name, ip_addr
            if not value:
                raise ValueError(f"{name} must be a non-empty string")
        for at in _LEASE_AT:  # what the codec refuses from clients (a 0 ms interval stops every eviction pass)
            if values[at] is not None and not valid_lease_s(values[at]):
                raise ValueError(f"{FIELD_NAMES[at]} must be between {MIN_LEASE_S} and {MAX_LEASE_S:.0f} seconds")
        if values[0] != values[0].upper():
            raise ValueError("app must be upper-case")
        # What the frozen dataclass's __init__ does, without its per-field Python calls (about half the cost).
        info = object.__new__(InstanceInfo)
        for put, value in zip(_SLOT_SETTERS, values):
            put(info, value)
        return info


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(InstanceInfo))
_FIELD_SET = frozenset(FIELD_NAMES)
_LEASE_AT = (FIELD_NAMES.index("renewal_interval_s"), FIELD_NAMES.index("lease_duration_s"))
_STATUS_BY_NAME: dict[object, Status] = {status.value: status for status in Status}


def _plain_types() -> dict[str, tuple[type, ...]]:
    """The exact types `from_dict` accepts per field, read off the annotations (statuses and maps are checked
    on their own); a float field takes an int too, and no field takes a bool for an int."""
    out: dict[str, tuple[type, ...]] = {}
    for name, hint in typing.get_type_hints(InstanceInfo).items():
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if all(isinstance(option, type) and option is not Status for option in options):
            out[name] = tuple(options) + ((int,) if float in options else ())
    return out


_PLAIN_TYPES = _plain_types()
# Per field, in order, the exact types an instance holds once decoded (statuses resolved, maps shared).
_ACCEPTED = tuple(frozenset(_PLAIN_TYPES.get(name, (MappingProxyType,) if name.endswith("metadata") else (Status,)))
                  for name in FIELD_NAMES)
# Every field's default, for the fields a peer leaves out; maps as plain dicts, as `to_dict` gives them.
_DEFAULTS: dict[str, object] = {
    f.name: {} if f.default is dataclasses.MISSING and f.default_factory is _empty else f.default
    for f in dataclasses.fields(InstanceInfo) if f.default is not dataclasses.MISSING or f.default_factory is _empty}
_DEFAULT_VALUES = tuple(_DEFAULTS.get(name) for name in FIELD_NAMES)  # the required four have none
_in_field_order = operator.itemgetter(*FIELD_NAMES)
_STATUS, _OVERRIDDEN = FIELD_NAMES.index("status"), FIELD_NAMES.index("overridden_status")
_MAP_AT = tuple(FIELD_NAMES.index(name) for name in ("data_center_metadata", "metadata"))
_SHARED_STRINGS_AT = tuple(FIELD_NAMES.index(name) for name in SHARED_STRING_FIELDS)
_SHARED_INTS_AT = tuple(FIELD_NAMES.index(name) for name in SHARED_INT_FIELDS)
_ONLY_STR = frozenset({str})
_SLOT_SETTERS = tuple(InstanceInfo.__dict__[name].__set__ for name in FIELD_NAMES)


def _status(name: object) -> Status:
    """`Status(name)` without Enum's slow lookup path (this runs for every replicated record)."""
    try:
        return _STATUS_BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"{name!r} is not a valid Status") from None


def resolve_register(incoming: InstanceInfo, existing: InstanceInfo | None, now_ms: int) -> InstanceInfo:
    """Apply Eureka's status rules to a (re-)registration taken at `now_ms`.

    An override set on the server is sticky across re-registers, except that an instance reporting itself
    DOWN, STARTING or UNKNOWN is believed (it knows it is not serving).
    """
    override = existing.overridden_status if existing is not None else Status.UNKNOWN
    if incoming.overridden_status is not Status.UNKNOWN:
        override = incoming.overridden_status
    status = incoming.status
    if status not in SELF_REPORTED_WINS and override is not Status.UNKNOWN:
        status = override
    up_since = existing.service_up_timestamp if existing is not None else incoming.service_up_timestamp
    if (status, override, up_since, now_ms) == (incoming.status, incoming.overridden_status,
                                                incoming.service_up_timestamp, incoming.registered_ms):
        return incoming  # the common case (the codec stamps registered_ms): nothing to resolve, so no copy
    return incoming.replace(status=status, overridden_status=override, service_up_timestamp=up_since,
                            registered_ms=now_ms)


def set_status_override(current: InstanceInfo, value: Status, now_ms: int) -> InstanceInfo:
    """PUT .../status: a sticky override that also becomes the status."""
    return current.replace(status=value, overridden_status=value, last_updated_timestamp=now_ms)


def remove_status_override(current: InstanceInfo, fallback: Status, now_ms: int) -> InstanceInfo:
    """DELETE .../status: drop the override; the status falls back to `fallback` (UNKNOWN unless given)."""
    return current.replace(status=fallback, overridden_status=Status.UNKNOWN, last_updated_timestamp=now_ms)


def update_metadata(current: InstanceInfo, changes: Mapping[str, str], now_ms: int) -> InstanceInfo:
    """PUT .../metadata?k=v: merge the given keys into the instance's metadata."""
    return current.replace(metadata={**current.metadata, **changes}, last_updated_timestamp=now_ms)
