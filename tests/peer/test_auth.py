"""Peer signatures: accepted within the window on both sides of the receiver's clock, refused outside it."""
from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from apreg.peer import auth

KEY = b"k"
NOW = 1_700_000_000_000


@given(offset=st.integers(-200_000, 200_000), window=st.integers(1, 120_000))
@example(offset=60_000, window=60_000)
@example(offset=60_001, window=60_000)
@example(offset=-60_001, window=60_000)
def test_a_signature_is_good_exactly_while_its_time_is_within_the_window(offset: int, window: int) -> None:
    """Dated `offset` ms from the receiver's clock, past or future: a one-sided check would let a capture
    signed ahead of time be replayed for as long as the signer liked."""
    headers = auth.sign(KEY, "POST", "/v1/peer/messages", b"body", NOW + offset)
    frame = auth.sign_frame(KEY, "/v1/peer/stream", b"body", NOW + offset)
    if abs(offset) <= window:
        auth.verify(KEY, "POST", "/v1/peer/messages", b"body", headers, NOW, window)
        assert auth.verify_frame(KEY, "/v1/peer/stream", frame, NOW, window) == b"body"
    else:
        with pytest.raises(auth.AuthError, match="window"):
            auth.verify(KEY, "POST", "/v1/peer/messages", b"body", headers, NOW, window)
        with pytest.raises(auth.AuthError, match="window"):
            auth.verify_frame(KEY, "/v1/peer/stream", frame, NOW, window)
