from apreg.client import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold: int = 3, cooldown: float = 5.0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(threshold, cooldown, clock), clock


def test_opens_after_n_consecutive_failures() -> None:
    breaker, _ = make(threshold=3)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_success_resets_the_failure_count() -> None:
    breaker, _ = make(threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_after_cooldown_admits_one_probe() -> None:
    breaker, clock = make(threshold=1, cooldown=5.0)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time


def test_successful_probe_closes() -> None:
    breaker, clock = make(threshold=1, cooldown=5.0)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    breaker, clock = make(threshold=3, cooldown=5.0)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    clock.now += 1
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_a_lost_probe_does_not_wedge_the_breaker() -> None:
    breaker, clock = make(threshold=1, cooldown=5.0)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()  # the probe's outcome is never reported
    clock.now += 5
    assert breaker.allow()
