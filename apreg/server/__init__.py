"""The aiohttp shell around the core: settings, the node runtime, HTTP handlers, the change feed."""
