"""What the Eureka client's log says, read through the exact strings it writes.

The strings are those of com.netflix.discovery.DiscoveryClient (Netflix/eureka, eureka-client,
DiscoveryClient.java); the method that logs each, and its level, is noted. DEBUG ones need
logging.level.com.netflix.discovery=DEBUG, which the apps' application.properties set.
"""
from __future__ import annotations

import re

REGISTERED = "registration status: "  # register(), INFO, then the HTTP status
HEARTBEAT = "Heartbeat status: "  # renew(), DEBUG, then the HTTP status
REREGISTER = "Re-registering apps/"  # renew() on a 404, INFO
DEREGISTERED = "deregister  status: "  # unregister(), INFO (two spaces, as written there)
FULL_FETCH = "Getting all instance registry info from the eureka server"  # getAndStoreFullRegistry(), INFO
DELTA = "Got delta update with apps hashcode "  # getAndUpdateDelta(), DEBUG
DELTA_REFUSED = "The server does not allow the delta revision to be applied"  # getAndUpdateDelta(), WARN
MISMATCH = "The Reconcile hashcodes do not match"  # reconcileAndLogDifference(), DEBUG, then a full fetch
DELTA_ACTIONS = ("Added instance ", "Modified instance ", "Deleted instance ")  # updateDelta(), DEBUG, per action
REFRESH_FAILED = "was unable to refresh its cache"  # fetchRegistry() / refreshRegistry(), INFO
REFRESHED = re.compile(r"Completed cache refresh task for discovery\. All Apps hash code is "
                       r"Local region apps hashcode: ([A-Z_0-9]*),")  # refreshRegistry(), DEBUG

_STATUS = re.compile(r"(\d{3})")


def count(log: str, needle: str) -> int:
    return log.count(needle)


def statuses(log: str, prefix: str) -> list[int]:
    """The HTTP statuses logged after `prefix` (HEARTBEAT, REGISTERED, DEREGISTERED), in order."""
    found = []
    for line in log.splitlines():
        at = line.find(prefix)
        if at >= 0:
            match = _STATUS.match(line, at + len(prefix))
            found.append(int(match.group(1)) if match else -1)
    return found


def last_hashcode(log: str) -> str | None:
    """The client's own apps hashcode after its latest refresh, or None if it logged none."""
    found = REFRESHED.findall(log)
    return found[-1] if found else None
