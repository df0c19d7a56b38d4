"""Shared test configuration: Hypothesis profiles.

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

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("default", max_examples=60, **_COMMON)
settings.register_profile("deep", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("APREG_HYPOTHESIS_PROFILE", "default"))
