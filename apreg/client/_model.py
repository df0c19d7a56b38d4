"""What the client hands to callers: immutable instances and per-app views precomputed for `choose()`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True, slots=True)
class Instance:
    """One registered instance as the registry last described it."""

    app: str
    instance_id: str
    host_name: str
    ip_addr: str
    port: int
    status: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    secure_port: int | None = None
    """None when the secure port is disabled."""
    vip_address: str | None = None
    last_dirty_timestamp: int = 0

    @property
    def zone(self) -> str | None:
        return self.metadata.get("zone")

    @property
    def url(self) -> str:
        """Base URL to call the instance at (plain HTTP on its port)."""
        return f"http://{self.host_name}:{self.port}"


@dataclass(frozen=True, slots=True)
class AppView:
    """An app's UP instances, rebuilt only when the app changes so `choose()` allocates nothing."""

    app: str
    up: tuple[Instance, ...]
    by_zone: Mapping[str, tuple[Instance, ...]]

    @staticmethod
    def build(app: str, instances: Mapping[str, Instance]) -> "AppView":
        up = tuple(sorted((i for i in instances.values() if i.status == "UP"), key=lambda i: i.instance_id))
        zones: dict[str, list[Instance]] = {}
        for inst in up:
            if inst.zone is not None:
                zones.setdefault(inst.zone, []).append(inst)
        return AppView(app, up, {zone: tuple(members) for zone, members in zones.items()})


EMPTY_VIEW = AppView("", (), {})


@dataclass(slots=True)
class Registration:
    """An instance this client keeps registered; the client updates it as the registry answers."""

    app: str
    instance_id: str
    host_name: str
    ip_addr: str
    port: int
    renewal_interval: float
    lease_duration: float
    last_dirty_timestamp: int
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = "UP"
    """What the instance says about itself; sent on every register and renew."""
    overridden_status: str | None = None
    """An override set through this client, re-sent on re-registration so a registry that lost it gets it back."""
    secure_port: int | None = None
    vip_address: str | None = None
    registered: bool = False
    """True once a node acknowledged the registration; False again when a renew found it unknown."""
    last_error: str = ""
    """Why the latest attempt to register failed ("" once one succeeds)."""
    refused: bool = False
    """The latest attempt was answered with a 4xx: the registry refuses this registration as it stands."""
