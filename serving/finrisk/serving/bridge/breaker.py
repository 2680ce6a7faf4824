"""A circuit breaker: stop calling an endpoint that keeps failing, probe it now and then.

CLOSED: calls go through; `failure_threshold` consecutive failures open the circuit.
OPEN: calls are refused until `reset_s` has passed since it opened; then HALF_OPEN.
HALF_OPEN: one probe call goes through; success closes the circuit, failure reopens it.
One thread uses a breaker (the bridge's loop), so no locking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_s <= 0:
            raise ValueError("a circuit breaker needs failure_threshold >= 1 and reset_s > 0")
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self.openings = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self.reset_s:
            self._state = BreakerState.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now."""
        return self.state is not BreakerState.OPEN

    def retry_in(self) -> float:
        """Seconds until a call is allowed (0 when it is now)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - self._clock())

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0

    def record_failure(self) -> None:
        state = self.state
        self._failures += 1
        if state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self.openings += 1
