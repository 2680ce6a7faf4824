"""Risk bands: the one definition of LOW / MEDIUM / HIGH used by training, evaluation and serving.

LOW < low <= MEDIUM <= high < HIGH, so a probability exactly on either edge is MEDIUM
(the seed's table: < 0.40 LOW, 0.40-0.70 MEDIUM, > 0.70 HIGH).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from finrisk.errors import FinriskError

LOW = "LOW"
MEDIUM = "MEDIUM"
HIGH = "HIGH"
BAND_NAMES: tuple[str, str, str] = (LOW, MEDIUM, HIGH)


@dataclass(frozen=True)
class RiskBands:
    """Band edges on the risk probability; both edges belong to MEDIUM."""

    low: float = 0.40
    high: float = 0.70

    def __post_init__(self) -> None:
        for name, value in (("low", self.low), ("high", self.high)):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise FinriskError(f"risk band edge {name}={value!r} is not a number")
            if math.isnan(value) or not 0.0 <= value <= 1.0:
                raise FinriskError(f"risk band edge {name}={value} must be within [0, 1]")
        if self.low > self.high:
            raise FinriskError(
                f"risk band edges must satisfy low <= high, got low={self.low} high={self.high}"
            )

    def band(self, probability: float) -> str:
        """The band of one probability."""
        if math.isnan(probability):
            raise FinriskError("cannot band a NaN risk probability")
        if probability < self.low:
            return LOW
        if probability > self.high:
            return HIGH
        return MEDIUM

    def bands(self, probabilities: npt.ArrayLike) -> npt.NDArray[np.str_]:
        """Vectorised `band`: same edges, same rule."""
        p = np.asarray(probabilities, dtype=np.float64)
        if np.isnan(p).any():
            raise FinriskError("cannot band a NaN risk probability")
        out = np.full(p.shape, MEDIUM, dtype="<U6")
        out[p < self.low] = LOW
        out[p > self.high] = HIGH
        return out

    def at_least(self, probabilities: npt.ArrayLike, band: str) -> npt.NDArray[np.bool_]:
        """Which probabilities fall in `band` or a higher one (the same edges as `bands`)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if band == LOW:
            return np.ones(p.shape, dtype=bool)
        if band == MEDIUM:
            return p >= self.low
        if band == HIGH:
            return p > self.high
        raise FinriskError(f"unknown risk band {band!r}; the bands are {', '.join(BAND_NAMES)}")

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskBands:
        return cls(low=float(data["low"]), high=float(data["high"]))


DEFAULT_BANDS = RiskBands()


def band(probability: float, bands: RiskBands = DEFAULT_BANDS) -> str:
    """The band of one probability under `bands` (default: DEFAULT_BANDS)."""
    return bands.band(probability)
