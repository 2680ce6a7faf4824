"""Metrics on tiny labelled sets whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from finrisk.errors import FinriskError
from finrisk.evaluation.metrics import (
    _rank_auc,
    band_confusion,
    binary_metrics,
    brier,
    confusion_at_threshold,
    pr_auc,
    precision_at_k,
    recall_at_fpr,
    roc_auc,
    roc_auc_gain_interval,
)
from finrisk.models.bands import RiskBands


def test_perfect_ranking_scores_one() -> None:
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.8, 0.9]
    assert roc_auc(y, s) == 1.0
    assert pr_auc(y, s) == 1.0
    assert recall_at_fpr(y, s, 0.01) == 1.0


def test_reversed_ranking_scores_zero_auc() -> None:
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0


def test_known_roc_and_pr_auc() -> None:
    # Pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4 ordered right.
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)
    # Ranked: 0.8 (pos) precision 1 at recall 1/2; 0.35 (pos) precision 2/3 at recall 1.
    assert pr_auc(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_recall_at_one_percent_fpr() -> None:
    negatives = np.arange(100) / 100  # 0.00 .. 0.99
    y = np.r_[np.zeros(100, dtype=int), 1, 1]
    # One positive above every negative; one beaten by two negatives (0.98, 0.99).
    s = np.r_[negatives, 0.995, 0.975]
    assert recall_at_fpr(y, s, 0.01) == 0.5
    # A 2% budget admits the second positive.
    assert recall_at_fpr(y, s, 0.02) == 1.0


def test_recall_at_fpr_ties_move_together() -> None:
    # The positive ties with 2 of 100 negatives: reaching it costs 2% FPR.
    y = np.r_[np.zeros(100, dtype=int), 1]
    s = np.r_[np.zeros(98), 0.9, 0.9, 0.9]
    assert recall_at_fpr(y, s, 0.01) == 0.0


def test_precision_at_k() -> None:
    y = [1, 0, 1, 0, 0]
    s = [0.9, 0.8, 0.7, 0.2, 0.1]
    assert precision_at_k(y, s, 1) == 1.0
    assert precision_at_k(y, s, 2) == 0.5
    assert precision_at_k(y, s, 3) == pytest.approx(2 / 3)
    assert precision_at_k(y, s, 50) == pytest.approx(2 / 5)  # k capped at the row count


def test_precision_at_k_breaks_ties_by_row_order() -> None:
    assert precision_at_k([0, 1], [0.5, 0.5], 1) == 0.0
    assert precision_at_k([1, 0], [0.5, 0.5], 1) == 1.0


def test_brier() -> None:
    assert brier([0, 1], [0.2, 0.6]) == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert brier([0, 1], [0.0, 1.0]) == 0.0


def test_confusion_at_threshold() -> None:
    counts = confusion_at_threshold([1, 0, 1, 0], [0.9, 0.6, 0.4, 0.1], 0.5)
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}


def test_band_confusion_counts_edges_as_medium() -> None:
    out = band_confusion([0, 0, 1, 1, 1], [0.1, 0.4, 0.7, 0.71, 0.9], RiskBands())
    assert out["LOW"] == {"n": 1, "negative": 1, "positive": 0, "positive_rate": 0.0}
    assert out["MEDIUM"] == {"n": 2, "negative": 1, "positive": 1, "positive_rate": 0.5}
    assert out["HIGH"] == {"n": 2, "negative": 0, "positive": 2, "positive_rate": 1.0}


def test_binary_metrics_names_and_values() -> None:
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    m = binary_metrics(y, s, k=2)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["precision_at_k"] == 0.5
    assert (m["k"], m["n"], m["positives"]) == (2, 4, 2)


@pytest.mark.parametrize(
    ("y", "s"),
    [([0, 0], [0.1, 0.2]), ([0, 2], [0.1, 0.2]), ([0, 1], [0.1]), ([0, 1], [0.1, float("nan")])],
)
def test_bad_inputs_are_user_errors(y: list[int], s: list[float]) -> None:
    with pytest.raises(FinriskError):
        roc_auc(y, s)


def test_brier_rejects_scores_outside_unit_interval() -> None:
    with pytest.raises(FinriskError):
        brier([0, 1], [-0.1, 0.5])


def test_roc_auc_gain_interval_brackets_the_gain() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    good = y + rng.normal(0, 0.5, 400)
    poor = y + rng.normal(0, 2.0, 400)
    gain = roc_auc(y, good) - roc_auc(y, poor)
    low, high = roc_auc_gain_interval(y, good, poor, resamples=200)
    assert 0 < low < gain < high
    # Identical models: the gain is exactly zero in every resample.
    assert roc_auc_gain_interval(y, good, good, resamples=50) == (0.0, 0.0)


def test_rank_auc_matches_roc_auc_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.2).astype(int)
    s = np.round(rng.random(300) + 0.3 * y, 1)  # coarse scores: many ties
    assert _rank_auc(y, s) == pytest.approx(roc_auc(y, s), abs=1e-12)
