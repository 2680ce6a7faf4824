"""Circuit breaker: opens after consecutive failures, probes after the reset time."""

from __future__ import annotations

import pytest

from finrisk.serving.bridge.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures_only() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, reset_s=2.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(2.0)


def test_half_open_after_reset_then_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, reset_s=2.0, clock=clock)
    breaker.record_failure()
    clock.now = 1.5
    assert not breaker.allow() and breaker.retry_in() == pytest.approx(0.5)
    clock.now = 2.0
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.openings == 1


def test_a_failed_probe_reopens_at_once_for_another_reset_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, reset_s=1.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now = 1.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(1.0)
    assert breaker.openings == 2


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0.0)])
def test_invalid_settings_are_refused(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError, match="circuit breaker"):
        CircuitBreaker(threshold, reset)
