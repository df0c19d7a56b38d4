"""The Eureka anchor tuned as far as Eureka allows (see `_eureka.py`): reads skip the read-only response cache."""
from __future__ import annotations

from typing import ClassVar

from _eureka import EurekaCluster, watch


class TunedEurekaCluster(EurekaCluster):
    system = "eureka-tuned"
    settings: ClassVar[dict[str, str]] = {"eureka.server.use-read-only-response-cache": "false"}
    # Most writes show within 3.5 s, but a replication batch that misses the peers' 200 ms read timeout on 2 busy
    # cores is retried later: one write took 20 s in a partition run, and a 15 s warm-up once timed out.
    drain_s: ClassVar[float] = 30.0


CLUSTER = TunedEurekaCluster
__all__ = ["CLUSTER", "watch"]
