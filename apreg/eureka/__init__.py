"""Eureka compatibility: the wire formats and HTTP surface that Eureka clients talk to."""
