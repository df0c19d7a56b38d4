"""The pure replication core: no I/O, no asyncio, no wall clock of its own."""
