"""Shared test configuration: Hypothesis profiles, and the per-test timeout that goes with them.

Select one with the environment variable APREG_HYPOTHESIS_PROFILE:
  - "default" (used when unset): modest example counts, so `pytest tests/core` stays around a minute;
  - "deep": many more examples and longer stateful runs, for a soak before a release
    (`APREG_HYPOTHESIS_PROFILE=deep python -m pytest tests/core`).
Neither profile is derandomized: every run explores new examples. A failure prints the falsifying example and a
`@reproduce_failure` blob (print_blob=True); the simulated clusters take their seeds from Hypothesis data, so
that blob replays the run exactly.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("default", max_examples=60, **_COMMON)
settings.register_profile("deep", max_examples=2000, **_COMMON)
PROFILE = os.environ.get("APREG_HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)
DEEP_TIMEOUT_S = 3600  # per test under the deep profile, whose stateful runs take many minutes


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The per-test timeout (pyproject.toml) sized for the profile, unless given with --timeout."""
    if PROFILE == "deep" and config.getoption("timeout") is None:
        config.option.timeout = DEEP_TIMEOUT_S


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hypothesis tests time out by ending the run, with every thread's stack (method "thread"). The default
    method, an alarm that fails the test, would be caught by Hypothesis as one more failing example, which it then
    replays and shrinks with no alarm left: forever, if the code under test hangs."""
    for item in items:
        given = getattr(getattr(item, "obj", None), "is_hypothesis_test", False)
        stateful = getattr(getattr(item, "cls", None), "__module__", "") == "hypothesis.stateful"
        if given or stateful:
            item.add_marker(pytest.mark.timeout(method="thread"))
