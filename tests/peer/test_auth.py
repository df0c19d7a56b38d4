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


def test_a_signature_is_good_once_and_the_guard_forgets_only_what_its_window_refuses_anyway() -> None:
    guard = auth.ReplayGuard(window_ms=1_000, limit=3)
    assert guard.first_use("s1", 10_000, 10_000) and not guard.first_use("s1", 10_000, 10_500)
    assert guard.first_use("s2", 10_400, 10_500)
    assert not guard.first_use("s1", 10_000, 11_900)  # kept two windows: a margin over the time check
    assert guard.first_use("s1", 10_000, 12_100)  # then forgotten: the time check alone refuses it
    for n in range(4):
        assert guard.first_use(f"x{n}", 12_100, 12_100)
    assert guard.first_use("x0", 12_100, 12_100)  # bounded: past the limit the oldest are forgotten
