"""Evaluation stage: the challenger's reports, and the champion scored on the same held-out data.

The challenger's metrics and HTML reports come from finrisk.evaluation (the same page
`finrisk train` writes). The current champion, when there is one, is scored on exactly the
challenger's test rows with the same metric functions, so the gate compares like with like;
when the champion cannot be scored on today's features (say a feature it needs was removed),
the metrics recorded when it was registered stand in, and the evaluation says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_curve

from finrisk.compiled import CompiledModel
from finrisk.errors import FinriskError
from finrisk.evaluation.compare import ANOMALY_K, RISK_K
from finrisk.evaluation.metrics import binary_metrics
from finrisk.evaluation.outputs import REPORT_FILE, write_anomaly_outputs, write_risk_outputs
from finrisk.evaluation.runs import BASELINE, OURS, AnomalyRun, RiskRun
from finrisk.gate import DETECTOR, GATE_METRICS, RISK
from finrisk.kinds import CHALLENGER, CHAMPION
from finrisk.retraining.training import read_user_features

RESCORED = "rescored on this run's test data"
RECORDED = "recorded at its registration"
ROC_POINTS = 101  # the Kubeflow UI draws every point it is given


@dataclass
class ChampionModel:
    """The registry's current champion of one kind: its compiled model (data, read without
    unpickling anything; scores within 1e-9 of the original's, checked at registration),
    version, recorded metrics."""

    compiled: CompiledModel
    version: str
    recorded_metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass
class Evaluation:
    challenger: dict[str, dict[str, float]]
    baseline: dict[str, dict[str, float]]
    champion: dict[str, dict[str, Any]]
    details: dict[str, dict[str, Any]]
    reports: dict[str, Path]

    def to_dict(self) -> dict[str, Any]:
        return {
            CHALLENGER: self.challenger,
            "baseline": self.baseline,
            CHAMPION: self.champion,
            "details": self.details,
        }


def _gate_metrics(model_metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(model_metrics[k]) for k in GATE_METRICS if k in model_metrics}


def _require_labels(kind: str, metrics: Mapping[str, Any]) -> None:
    if "roc_auc" not in metrics["models"][OURS]:
        raise FinriskError(
            f"the {kind} test data has no labels of both classes "
            f"({metrics.get('note', 'no ranking metrics')}): the gate cannot judge the challenger"
        )


def champion_detector_metrics(
    champion: ChampionModel, run: AnomalyRun, transaction_features: pd.DataFrame
) -> dict[str, Any]:
    """The champion detector's metrics on the challenger's test period (or recorded ones)."""
    assert run.test_labels is not None
    test_x = transaction_features.iloc[np.flatnonzero(run.split.test)]
    try:
        scores = _champion_scores(champion, test_x)
    except FinriskError as exc:
        return _recorded(champion, str(exc))
    return {
        **_gate_metrics(binary_metrics(run.test_labels, scores, k=ANOMALY_K)),
        "version": champion.version,
        "source": RESCORED,
    }


def champion_risk_metrics(
    champion: ChampionModel, run: RiskRun, user_features: pd.DataFrame
) -> dict[str, Any]:
    """The champion risk model's metrics on the challenger's test users (or recorded ones)."""
    test_x = user_features.loc[run.test_users]
    try:
        scores = _champion_scores(champion, test_x)
    except FinriskError as exc:
        return _recorded(champion, str(exc))
    return {
        **_gate_metrics(binary_metrics(run.test_labels, scores, k=RISK_K)),
        "version": champion.version,
        "source": RESCORED,
    }


def _champion_scores(champion: ChampionModel, rows: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The compiled champion's scores (anomaly score, or risk probability) of `rows`."""
    names = list(champion.compiled.feature_names)
    missing = [name for name in names if name not in rows.columns]
    if missing:
        raise FinriskError(f"it needs features the data lacks: {missing[:5]}")
    return champion.compiled.score(rows.loc[:, names].to_numpy(dtype=np.float64))


def _recorded(champion: ChampionModel, why: str) -> dict[str, Any]:
    if not champion.recorded_metrics:
        raise FinriskError(
            f"the champion (version {champion.version}) cannot be scored on this data ({why}) "
            "and has no recorded metrics to compare with"
        )
    return {
        **_gate_metrics(champion.recorded_metrics),
        "version": champion.version,
        "source": f"{RECORDED} ({why})",
    }


def roc_points(
    labels: npt.ArrayLike, scores: npt.ArrayLike, max_points: int = ROC_POINTS
) -> tuple[list[float], list[float], list[float]]:
    """(fpr, tpr, thresholds) thinned to at most `max_points`, with finite thresholds only."""
    fpr, tpr, thresholds = roc_curve(np.asarray(labels), np.asarray(scores, dtype=np.float64))
    # roc_curve starts at an infinite threshold (flag nothing); 1.0 flags nothing here too.
    thresholds = np.where(np.isfinite(thresholds), thresholds, 1.0)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    return fpr.tolist(), tpr.tolist(), thresholds.tolist()


def confusion_matrix(
    labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float
) -> list[list[int]]:
    """Rows = actual (0, 1), columns = flagged (0, 1) at `threshold`."""
    y = np.asarray(labels).astype(np.int64)
    flag = (np.asarray(scores) >= threshold).astype(np.int64)
    return [[int(((y == a) & (flag == p)).sum()) for p in (0, 1)] for a in (0, 1)]


def evaluate(
    detector_run: AnomalyRun,
    risk_run: RiskRun,
    out_dir: str | Path,
    *,
    transaction_features_path: str | Path | None = None,
    user_features_path: str | Path | None = None,
    champions: Mapping[str, ChampionModel] | None = None,
) -> Evaluation:
    """Reports for both challengers under `out_dir/<kind>/`, and the comparison with champions."""
    out = Path(out_dir)
    detector_metrics, _ = write_anomaly_outputs(detector_run, out / DETECTOR)
    risk_metrics, _ = write_risk_outputs(risk_run, out / RISK)
    _require_labels(DETECTOR, detector_metrics)
    champions = champions or {}
    champion: dict[str, dict[str, Any]] = {}
    if DETECTOR in champions:
        if transaction_features_path is None:
            raise FinriskError("scoring the champion detector needs the transaction features")
        tx = pd.read_parquet(transaction_features_path)
        champion[DETECTOR] = champion_detector_metrics(champions[DETECTOR], detector_run, tx)
    if RISK in champions:
        if user_features_path is None:
            raise FinriskError("scoring the champion risk model needs the user features")
        users, _ = read_user_features(user_features_path)
        champion[RISK] = champion_risk_metrics(champions[RISK], risk_run, users)
    details = {
        DETECTOR: {
            "threshold": float(detector_run.thresholds[OURS]),
            "mode": detector_metrics.get("ours_mode"),
            # Trained with merchant risk (a labels table): the champion is scored on the same
            # rows with the same as-of merchant features (build_features).
            "merchant_features": bool(detector_run.facts.get("merchant_features")),
            "split": detector_metrics["split"],
        },
        RISK: {"bands": risk_metrics["bands"], "split": risk_metrics["split"]},
    }
    return Evaluation(
        challenger={
            DETECTOR: _gate_metrics(detector_metrics["models"][OURS]),
            RISK: _gate_metrics(risk_metrics["models"][OURS]),
        },
        baseline={
            DETECTOR: _gate_metrics(detector_metrics["models"][BASELINE]),
            RISK: _gate_metrics(risk_metrics["models"][BASELINE]),
        },
        champion=champion,
        details=details,
        reports={DETECTOR: out / DETECTOR / REPORT_FILE, RISK: out / RISK / REPORT_FILE},
    )


@dataclass(frozen=True)
class ClassificationData:
    """What a KFP ClassificationMetrics artifact shows: ROC points and a confusion matrix."""

    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]
    classes: list[str]
    matrix: list[list[int]]


def classification_data(
    detector_run: AnomalyRun, risk_run: RiskRun
) -> dict[str, ClassificationData]:
    """Per kind: the challenger's test ROC curve and its confusion matrix (the detector at its
    chosen threshold, the risk model at probability 0.5)."""
    out: dict[str, ClassificationData] = {}
    for kind, labels, scores, threshold, classes in (
        (
            DETECTOR,
            detector_run.test_labels,
            detector_run.test_scores[OURS],
            detector_run.thresholds[OURS],
            ["legitimate", "fraud"],
        ),
        (RISK, risk_run.test_labels, risk_run.test_scores[OURS], 0.5, ["not risky", "risky"]),
    ):
        if labels is None:
            raise FinriskError(f"the {kind} test data has no labels")
        fpr, tpr, thresholds = roc_points(labels, scores)
        out[kind] = ClassificationData(
            fpr, tpr, thresholds, classes, confusion_matrix(labels, scores, threshold)
        )
    return out


def flat_metrics(evaluation: Evaluation) -> dict[str, float]:
    """`<who>_<kind>_<metric>` scalars for the Kubeflow run's metrics table."""
    flat: dict[str, float] = {}
    for who, table in (
        (CHALLENGER, evaluation.challenger),
        ("baseline", evaluation.baseline),
        (CHAMPION, evaluation.champion),
    ):
        for kind, metrics in table.items():
            for name, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    flat[f"{who}_{kind}_{name}"] = float(value)
    return flat


def summary_markdown(evaluation: Evaluation) -> str:
    """Challenger, seed-style baseline and champion side by side, one table per model."""
    parts = ["# Evaluation on held-out data\n"]
    for kind, title in (
        (DETECTOR, "Transaction anomaly detector (test period)"),
        (RISK, "User risk classifier (test users)"),
    ):
        champ = evaluation.champion.get(kind)
        header = "| metric | challenger | seed-style baseline | champion |"
        rows = [f"## {title}\n", header, "|---|---|---|---|"]
        for name in GATE_METRICS:
            if name not in evaluation.challenger[kind]:
                continue
            champ_value = "-" if not champ or name not in champ else f"{champ[name]:.4f}"
            rows.append(
                f"| {name} | {evaluation.challenger[kind][name]:.4f} "
                f"| {evaluation.baseline[kind].get(name, float('nan')):.4f} | {champ_value} |"
            )
        if champ:
            rows.append(f"\nChampion: version {champ['version']}, {champ['source']}.")
        else:
            rows.append("\nNo champion yet.")
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)
