"""apreg's async discovery client: register and renew instances, discover them from a live local cache.

    async with RegistryClient(["http://127.0.0.1:8761", "http://127.0.0.1:8762"]) as client:
        await client.register("orders", instance_id="orders-1", host="127.0.0.1", port=8080)
        target = await client.choose("orders")
"""
from ._backoff import Backoff
from ._balancer import RandomChoice, RoundRobin, Strategy, ZonePreferring
from ._breaker import BreakerState, CircuitBreaker
from ._cache import Listener
from ._client import RegistryClient
from ._config import ClientConfig
from ._errors import InstanceNotFound, RegistryError, RegistryUnavailable, RequestRejected
from ._model import AppView, Instance, Registration

__all__ = [
    "AppView", "Backoff", "BreakerState", "CircuitBreaker", "ClientConfig", "Instance", "InstanceNotFound",
    "Listener", "RandomChoice", "RegistryClient", "RegistryError", "RegistryUnavailable", "Registration",
    "RequestRejected", "RoundRobin", "Strategy", "ZonePreferring",
]
