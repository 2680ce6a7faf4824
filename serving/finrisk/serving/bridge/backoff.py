"""Exponential backoff with jitter, for retrying the predictor, the sink and Kafka outputs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before retry number `attempt` (1, 2, ...): initial * multiplier^(attempt-1), capped.

    "Equal jitter": the delay is drawn from [cap/2, cap], so retries of many clients spread out
    while each still waits at least half the nominal delay.
    """

    initial_s: float
    max_s: float
    multiplier: float = 2.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.multiplier < 1:
            raise ValueError(
                f"backoff needs 0 < initial ({self.initial_s}) <= max ({self.max_s}) "
                f"and multiplier ({self.multiplier}) >= 1"
            )

    def nominal(self, attempt: int) -> float:
        if attempt < 1:
            raise ValueError(f"retry attempts count from 1, not {attempt}")
        # Exponent capped: beyond ~60 doublings the float overflows and the cap applies anyway.
        return min(self.max_s, self.initial_s * self.multiplier ** min(attempt - 1, 60))

    def delay(self, attempt: int) -> float:
        cap = self.nominal(attempt)
        return self.rng.uniform(cap / 2, cap) if self.jitter else cap
