import random

from hypothesis import given
from hypothesis import strategies as st

from apreg.client import Backoff


@given(base=st.floats(0, 100), cap=st.floats(0, 1000), attempt=st.integers(0, 5000), u=st.floats(0, 1, exclude_max=True))
def test_every_delay_is_within_zero_and_the_capped_exponential(base: float, cap: float, attempt: int, u: float) -> None:
    delay = Backoff(base, cap, lambda: u).delay(attempt)
    assert 0 <= delay <= min(cap, base * 2.0 ** min(attempt, 1000))


def test_ceiling_doubles_until_the_cap() -> None:
    backoff = Backoff(0.1, 1.0, lambda: 0.5)
    assert [backoff.ceiling(a) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.delay(2) == 0.2


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(7).random)
    delays = [backoff.delay(3) for _ in range(2000)]
    assert min(delays) < 0.5 and max(delays) > 7.5
