"""A bridge V2 client talking to an in-process stand-in for the predictor (an httpx handler),
for unit tests of what the bridge does with its answers."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.breaker import CircuitBreaker
from finrisk.serving.bridge.v2_client import V2Client


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> V2Client:
    """One attempt per call (no retries to wait out), answered by `handler`."""
    return V2Client(
        "http://predictor.test",
        timeout_s=1,
        max_attempts=1,
        backoff=Backoff(0.01, 0.1),
        breaker=CircuitBreaker(3, 1.0),
        transport=httpx.MockTransport(handler),
    )
