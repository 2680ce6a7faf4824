"""Exponential backoff: grows by the multiplier, stops at the cap, jitters within [cap/2, cap]."""

from __future__ import annotations

import random

import pytest

from finrisk.serving.bridge.backoff import Backoff


def test_nominal_delay_doubles_then_is_capped() -> None:
    backoff = Backoff(0.1, 1.0, jitter=False)
    assert [backoff.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.delay(10_000) == 1.0  # no overflow for long outages


def test_jittered_delay_stays_within_half_and_full_nominal() -> None:
    backoff = Backoff(0.05, 2.0, rng=random.Random(3))
    for attempt in range(1, 12):
        cap = backoff.nominal(attempt)
        draws = [backoff.delay(attempt) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in draws)
        assert max(draws) - min(draws) > cap / 4  # it does spread


@pytest.mark.parametrize(
    ("initial", "maximum", "multiplier"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (0.1, 1.0, 0.5)]
)
def test_invalid_settings_are_refused(initial: float, maximum: float, multiplier: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial, maximum, multiplier)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="count from 1"):
        Backoff(0.1, 1.0).delay(0)
