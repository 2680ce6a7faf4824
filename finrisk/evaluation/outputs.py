"""What a training run leaves in its output folder.

model.joblib        ours (load with finrisk.models.load_model)
baseline.joblib     the seed-style baseline, trained on the same split
metrics.json        side-by-side test metrics, split and data facts
plots/*.png         PR, ROC, calibration, score distributions
report.html         one self-contained page: table + plots
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from finrisk.evaluation.compare import anomaly_metrics, risk_metrics
from finrisk.evaluation.plots import write_plots
from finrisk.evaluation.report import write_report
from finrisk.evaluation.runs import BASELINE, OURS, AnomalyRun, RiskRun
from finrisk.models.persistence import save_model

MODEL_FILE = "model.joblib"
BASELINE_FILE = "baseline.joblib"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
PLOTS_DIR = "plots"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _write_common(
    out_dir: Path, run: AnomalyRun | RiskRun, metrics: dict[str, Any], title: str, extra: str
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "model": save_model(run.ours, out_dir / MODEL_FILE),
        "baseline": save_model(run.baseline, out_dir / BASELINE_FILE),
        "metrics": write_json(out_dir / METRICS_FILE, metrics),
    }
    plots = write_plots(run.test_labels, run.test_scores, out_dir / PLOTS_DIR, title)
    paths.update({f"plot_{kind}": p for kind, p in plots.items()})
    paths["report"] = write_report(out_dir / REPORT_FILE, title, metrics, plots, extra)
    return paths


def write_anomaly_outputs(run: AnomalyRun, out_dir: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    metrics = anomaly_metrics(run)
    metrics["feature_names"] = {
        OURS: list(run.ours.feature_names_),
        BASELINE: list(run.baseline.feature_names_),
    }
    paths = _write_common(out_dir, run, metrics, "Transaction anomaly detector", "")
    return metrics, paths


def _reasons_html(run: RiskRun, n: int = 10) -> str:
    top = run.test_assessment.sort_values("probability", ascending=False, kind="stable").head(n)
    rows = []
    for user, probability, band, reasons in zip(
        top.index, top["probability"], top["band"], top["reasons"], strict=True
    ):
        text = "; ".join(
            f"{html.escape(str(r['feature']))} = {r['value']:.4g} "
            f"(median {r['reference']:.4g}, {r['contribution']:+.3f})"
            for r in reasons
        )
        rows.append(
            f"<tr><td>{html.escape(str(user))}</td><td>{probability:.3f}</td>"
            f"<td>{html.escape(str(band))}</td><td style='text-align:left'>{text}</td></tr>"
        )
    return (
        "<h2>Highest-risk test users and their reasons (ours)</h2><p class='note'>A reason's "
        "contribution is the change in probability when that feature is set to the training "
        "median (occlusion).</p><table><tr><th>user</th><th>probability</th><th>band</th>"
        "<th>reasons</th></tr>" + "".join(rows) + "</table>"
    )


def write_risk_outputs(run: RiskRun, out_dir: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    metrics = risk_metrics(run)
    metrics["feature_names"] = {
        OURS: list(run.ours.feature_names_),
        BASELINE: list(run.baseline.feature_names_),
    }
    paths = _write_common(out_dir, run, metrics, "User risk classifier", _reasons_html(run))
    return metrics, paths
