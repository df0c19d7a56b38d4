"""What parsing (codec.py) and rendering (render.py) share: Eureka's field tables and an instance as rendered."""
from __future__ import annotations

import re
from dataclasses import dataclass

from apreg.core.instance import InstanceInfo

# Optional string fields in the order Eureka writes them (before isCoordinatingDiscoveryServer).
AUTO_STRINGS = (
    ("appGroupName", "app_group_name"),
    ("homePageUrl", "home_page_url"),
    ("statusPageUrl", "status_page_url"),
    ("healthCheckUrl", "health_check_url"),
    ("secureHealthCheckUrl", "secure_health_check_url"),
    ("vipAddress", "vip_address"),
    ("secureVipAddress", "secure_vip_address"),
)
# Characters XML 1.0 cannot carry at all (not even escaped); lone surrogates included.
XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class LeaseTimes:
    """What the node knows about a lease; rendered into `leaseInfo`, which clients never send us truthfully."""

    renewal_interval_s: float
    duration_s: float
    registration_ms: int
    last_renewal_ms: int
    eviction_ms: int = 0
    service_up_ms: int = 0


@dataclass(frozen=True, slots=True)
class InstanceView:
    """One instance as rendered: its record, its lease and, in a delta, what happened to it."""

    info: InstanceInfo
    lease: LeaseTimes
    action: str | None = None  # "ADDED" | "MODIFIED" | "DELETED"
