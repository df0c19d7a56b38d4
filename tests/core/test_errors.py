"""Every apreg error says whose fault it is and how it is answered; the abstract levels cannot be raised."""
from __future__ import annotations

import pytest

from apreg.core.errors import ApregError, ClientError, ClockSkewError, Fault, PeerError
from apreg.server.errors import AuthError, CodecError, PeerUnavailable, WireError


@pytest.mark.parametrize("abstract", [ApregError, ClientError, PeerError])
def test_abstract_levels_refuse_to_be_raised(abstract: type[ApregError]) -> None:
    with pytest.raises(TypeError, match="abstract"):
        abstract("detail")


@pytest.mark.parametrize(("error", "fault", "status", "slug"), [
    (CodecError("invalid_port", "port must be an integer"), Fault.CLIENT, 400, "invalid_port"),
    (WireError("not a msgpack frame"), Fault.PEER, 400, "bad_peer_message"),
    (AuthError("peer request is not signed"), Fault.PEER, 401, "unauthorized"),
    (ClockSkewError("timestamp 9 ms ahead"), Fault.PEER, 400, "clock_skew"),
    (PeerUnavailable("connection refused"), Fault.OURS, 503, "peer_unavailable"),
])
def test_each_error_carries_direction_status_and_slug(error: ApregError, fault: Fault, status: int,
                                                      slug: str) -> None:
    assert (error.fault, error.http_status, error.error) == (fault, status, slug)
    assert not isinstance(error, ValueError)  # callers catch them by what they are, not as any ValueError
