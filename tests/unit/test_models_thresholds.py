"""Flag thresholds chosen on validation scores, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from finrisk.errors import FinriskError
from finrisk.models.thresholds import (
    alert_rate_threshold,
    best_f1_threshold,
    choose_threshold,
    target_fpr_threshold,
)


def test_best_f1_threshold() -> None:
    # Flag >= 0.8: F1 2/3; >= 0.4: 1/2; >= 0.35: P 2/3, R 1 -> F1 0.8 (best); >= 0.1: 2/3.
    assert best_f1_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.35


def test_target_fpr_threshold() -> None:
    y = np.r_[np.zeros(100, dtype=int), 1, 1]
    s = np.r_[np.arange(100) / 100, 0.995, 0.975]
    threshold = target_fpr_threshold(y, s, 0.01)
    assert threshold == 0.99  # flags one negative of 100
    assert ((s >= threshold) & (y == 0)).sum() == 1


def test_alert_rate_threshold_flags_that_share() -> None:
    s = np.arange(1000) / 1000
    threshold = alert_rate_threshold(s, 0.01)
    assert (s >= threshold).sum() == 10


def test_choose_threshold_resolves_auto_by_labels() -> None:
    s = np.arange(100) / 100
    y = (s > 0.9).astype(int)
    assert choose_threshold(s, y)[1] == "best_f1"
    assert choose_threshold(s, None)[1] == "alert_rate"
    assert choose_threshold(s, np.zeros(100, dtype=int))[1] == "alert_rate"


def test_choose_threshold_rejects_bad_requests() -> None:
    with pytest.raises(FinriskError, match="unknown threshold strategy"):
        choose_threshold([0.1, 0.2], [0, 1], strategy="magic")
    with pytest.raises(FinriskError, match="needs labels"):
        choose_threshold([0.1, 0.2], None, strategy="best_f1")
