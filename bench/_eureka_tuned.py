"""The Eureka anchor tuned as far as Eureka allows (see `_eureka.py`): reads skip the read-only response cache."""
from __future__ import annotations

from typing import ClassVar

from _eureka import EurekaCluster, watch


class TunedEurekaCluster(EurekaCluster):
    system = "eureka-tuned"
    settings: ClassVar[dict[str, str]] = {"eureka.server.use-read-only-response-cache": "false"}
    drain_s: ClassVar[float] = 10.0  # replication batches wait up to 500 ms, and 3 JVMs share 2 cores


CLUSTER = TunedEurekaCluster
__all__ = ["CLUSTER", "watch"]
