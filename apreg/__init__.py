"""apreg: an eventually consistent, Eureka-compatible, peer-replicated service registry."""
