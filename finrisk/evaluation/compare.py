"""Side-by-side metrics of ours and the seed-style baseline on one run's test set."""

from __future__ import annotations

from typing import Any

from finrisk.evaluation.metrics import (
    band_confusion,
    binary_metrics,
    confusion_at_threshold,
    expected_calibration_error,
    fraud_team_metrics,
    roc_auc_gain_interval,
)
from finrisk.evaluation.runs import (
    BASELINE,
    DEFAULT_HGB,
    OURS,
    OURS_UNSUPERVISED,
    RAW_HGB,
    AnomalyRun,
    RiskRun,
)

ANOMALY_K = 100  # alerts an analyst reviews in a sitting
# Alerts the investigation team works through per day, per 1,000 customers: on the
# benchmark's 5,000 (about 14,000 transactions and 30-90 frauds a day), 50 alerts a day, a
# team of about three analysts. Scaled to the customers so a small run keeps the same bite.
DAILY_ALERTS_PER_1000_USERS = 10


def daily_alert_budget(users: int) -> int:
    """Alerts per day for a book of `users` customers (at least one)."""
    return max(1, round(users * DAILY_ALERTS_PER_1000_USERS / 1000))


RISK_K = 50  # users a case worker reviews


def _ratio(ours: float, baseline: float) -> float | None:
    return ours / baseline if baseline > 0 else None


def anomaly_metrics(run: AnomalyRun) -> dict[str, Any]:
    """Test-period metrics of both detectors; without labels only score summaries."""
    result: dict[str, Any] = {
        "task": "anomaly",
        "split": run.split.describe(),
        **run.facts,
    }
    if run.test_labels is None or run.test_labels.min() == run.test_labels.max():
        result["note"] = "the test period has no fraud labels (or one class): no ranking metrics"
        result["models"] = {
            name: {
                "threshold": run.thresholds[name],
                "flag_rate": float((scores >= run.thresholds[name]).mean()),
            }
            for name, scores in run.test_scores.items()
            if name in run.thresholds
        }
        return result
    models: dict[str, Any] = {}
    budget = daily_alert_budget(int(run.facts.get("test_users", 0)))
    for name, scores in run.test_scores.items():
        models[name] = binary_metrics(run.test_labels, scores, k=ANOMALY_K)
        if run.test_days is not None and run.test_amounts is not None:
            models[name].update(
                fraud_team_metrics(
                    run.test_labels,
                    scores,
                    run.test_days,
                    run.test_amounts,
                    budget=budget,
                ),
                daily_alert_budget=budget,
            )
        if name in run.thresholds:  # the raw-fields baseline picks no flag threshold
            models[name]["threshold"] = run.thresholds[name]
            models[name]["confusion_at_threshold"] = confusion_at_threshold(
                run.test_labels, scores, run.thresholds[name]
            )
    result["models"] = models
    result["pr_auc_ratio"] = _ratio(models[OURS]["pr_auc"], models[BASELINE]["pr_auc"])
    if RAW_HGB in models:
        result["pr_auc_ratio_raw_hgb"] = _ratio(models[OURS]["pr_auc"], models[RAW_HGB]["pr_auc"])
    if OURS_UNSUPERVISED in models:
        result["pr_auc_ratio_unsupervised"] = _ratio(
            models[OURS_UNSUPERVISED]["pr_auc"], models[BASELINE]["pr_auc"]
        )
    return result


def risk_metrics(run: RiskRun) -> dict[str, Any]:
    """Test-user metrics of the risk models (ours, the seed-style baseline, the default
    boosting), with calibration error and band confusion under the same bands, and how ours
    chose its estimator."""
    models: dict[str, Any] = {}
    for name, scores in run.test_scores.items():
        models[name] = {
            **binary_metrics(run.test_labels, scores, k=RISK_K),
            "ece": expected_calibration_error(run.test_labels, scores),
            "band_confusion": band_confusion(run.test_labels, scores, run.bands),
        }
    result: dict[str, Any] = {
        "task": "risk",
        "split": run.split.describe(),
        "bands": run.bands.to_dict(),
        **run.facts,
        "models": models,
        "estimator": run.ours.metadata_.get("estimator"),
        "selection": run.ours.metadata_.get("selection"),
    }
    if DEFAULT_HGB in models:
        result["roc_auc_vs_default_hgb"] = models[OURS]["roc_auc"] - models[DEFAULT_HGB]["roc_auc"]
    return {
        **result,
        "roc_auc_gain": models[OURS]["roc_auc"] - models[BASELINE]["roc_auc"],
        "roc_auc_gain_ci95": list(
            roc_auc_gain_interval(run.test_labels, run.test_scores[OURS], run.test_scores[BASELINE])
        ),
    }
