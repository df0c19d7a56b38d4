"""Peer replication: the msgpack wire format, message authentication and the HTTP transport."""
