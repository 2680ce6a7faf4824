"""Band edges: both 0.40 and 0.70 are MEDIUM; custom and invalid edges."""

from __future__ import annotations

import numpy as np
import pytest

from finrisk.errors import FinriskError
from finrisk.models.bands import DEFAULT_BANDS, HIGH, LOW, MEDIUM, RiskBands, band


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0, LOW),
        (0.3999, LOW),
        (0.40, MEDIUM),
        (0.55, MEDIUM),
        (0.70, MEDIUM),
        (0.7001, HIGH),
        (1.0, HIGH),
    ],
)
def test_default_edges(p: float, expected: str) -> None:
    assert band(p) == expected
    assert DEFAULT_BANDS.bands([p]).tolist() == [expected]


def test_vectorised_matches_scalar() -> None:
    p = np.linspace(0, 1, 1001)
    assert DEFAULT_BANDS.bands(p).tolist() == [band(x) for x in p]


def test_at_least_agrees_with_the_bands_on_every_edge() -> None:
    order = {LOW: 0, MEDIUM: 1, HIGH: 2}
    p = np.concatenate([np.linspace(0, 1, 1001), [0.40, 0.70, np.nextafter(0.70, 1.0)]])
    named = DEFAULT_BANDS.bands(p)
    for floor in (LOW, MEDIUM, HIGH):
        expected = [order[name] >= order[floor] for name in named]
        assert DEFAULT_BANDS.at_least(p, floor).tolist() == expected
    with pytest.raises(FinriskError, match="unknown risk band 'medium'"):
        DEFAULT_BANDS.at_least(p, "medium")


def test_custom_edges() -> None:
    bands = RiskBands(low=0.2, high=0.5)
    assert [bands.band(p) for p in (0.1999, 0.2, 0.5, 0.5001)] == [LOW, MEDIUM, MEDIUM, HIGH]
    # Equal edges leave MEDIUM a single point.
    point = RiskBands(low=0.5, high=0.5)
    assert [point.band(p) for p in (0.4999, 0.5, 0.5001)] == [LOW, MEDIUM, HIGH]


def test_round_trip_through_dict() -> None:
    bands = RiskBands(low=0.3, high=0.8)
    assert RiskBands.from_dict(bands.to_dict()) == bands


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.7, 0.4), (-0.1, 0.5), (0.4, 1.1), (float("nan"), 0.7), ("0.4", 0.7), (True, 0.7)],
)
def test_invalid_edges_rejected(low: object, high: object) -> None:
    with pytest.raises(FinriskError):
        RiskBands(low=low, high=high)  # type: ignore[arg-type]


def test_nan_probability_rejected() -> None:
    with pytest.raises(FinriskError):
        band(float("nan"))
    with pytest.raises(FinriskError):
        DEFAULT_BANDS.bands([0.5, float("nan")])
