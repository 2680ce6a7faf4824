"""A one-page, self-contained HTML report: side-by-side metrics and the plots (base64 PNG)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finrisk.evaluation.runs import (
    BASELINE,
    DEFAULT_HGB,
    OURS,
    OURS_NO_MERCHANT,
    OURS_UNSUPERVISED,
    RAW_HGB,
)

# Metric name -> (label, True when higher is better).
METRIC_LABELS: dict[str, tuple[str, bool]] = {
    "roc_auc": ("ROC-AUC", True),
    "pr_auc": ("PR-AUC (average precision)", True),
    "recall_at_1pct_fpr": ("recall at 1% FPR", True),
    "precision_at_k": ("precision at k", True),
    "brier": ("Brier score", False),
    "ece": ("expected calibration error (10 bins)", False),
    # The detector's, under a daily alert budget (finrisk.evaluation.metrics).
    "daily_budget_precision": ("precision within the daily alert budget", True),
    "daily_budget_recall": ("recall within the daily alert budget", True),
    "cost_loss": ("cost-weighted loss (1 = no detector)", False),
}

MODEL_LABELS: dict[str, str] = {
    OURS: "ours",
    BASELINE: "seed-style baseline",
    OURS_UNSUPERVISED: "ours, trained without labels",
    OURS_NO_MERCHANT: "ours without merchant risk",
    RAW_HGB: "default boosting on raw fields",
    DEFAULT_HGB: "default boosting (HistGradientBoostingClassifier())",
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
.better{font-weight:bold;color:#0a6d2c}
.plots img{width:32rem;max-width:100%;margin:.25rem}
.note{color:#555;font-size:.9rem}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return html.escape(str(value))


def _metrics_table(models: Mapping[str, Mapping[str, Any]]) -> str:
    """One column per model, the best value of each row in bold, then ours / baseline."""
    names = [n for n in models if "roc_auc" in models[n]]
    rows = []
    for key, (label, higher) in METRIC_LABELS.items():
        if any(key not in models[n] for n in names):
            continue  # the budget metrics: detectors only
        values = {n: models[n][key] for n in names}
        best = max(values.values()) if higher else min(values.values())
        cells = "".join(
            (f"<td class='better'>{_fmt(v)}</td>" if v == best else f"<td>{_fmt(v)}</td>")
            for v in values.values()
        )
        base = values.get(BASELINE)
        ratio = _fmt(values[OURS] / base) if base else "-"
        if key == "precision_at_k":
            label = f"precision at k={models[OURS]['k']}"
        rows.append(f"<tr><td>{label}</td>{cells}<td>{ratio}</td></tr>")
    heads = "".join(f"<th>{html.escape(MODEL_LABELS.get(n, n))}</th>" for n in names)
    return (
        f"<table><tr><th>metric (test set)</th>{heads}<th>ours / baseline</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _selection_table(selection: Mapping[str, Any]) -> str:
    """The risk model's candidates, their cross-validated scores and the one chosen."""
    rows = "".join(
        f"<tr><td>{html.escape(str(c['candidate']))}"
        f"{' (chosen)' if c['candidate'] == selection['chosen'] else ''}</td>"
        f"<td>{_fmt(c['cv_roc_auc_mean'])} ± {_fmt(c['cv_roc_auc_std'])}</td>"
        f"<td>{_fmt(c['cv_brier_mean'])}</td></tr>"
        for c in selection["candidates"]
    )
    return (
        "<h2>Model selection (ours)</h2><p class='note'>Each candidate calibrated, scored by "
        f"{selection['candidates'][0]['folds']}-fold stratified cross-validation on the training "
        f"users (seed {selection['seed']}); the simplest within "
        f"{selection['tie_tolerance']} of the best mean ROC-AUC wins, then is refit on every "
        "training user.</p><table><tr><th>candidate</th><th>CV ROC-AUC (mean ± std)</th>"
        "<th>CV Brier</th></tr>" + rows + "</table>"
    )


def _band_table(name: str, confusion: Mapping[str, Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{band}</td><td>{c['n']}</td><td>{c['negative']}</td><td>{c['positive']}</td>"
        f"<td>{_fmt(c['positive_rate'])}</td></tr>"
        for band, c in confusion.items()
    )
    return (
        f"<h3>Band confusion: {html.escape(name)}</h3><table><tr><th>band</th><th>users</th>"
        "<th>no outcome</th><th>outcome</th><th>observed rate</th></tr>" + rows + "</table>"
    )


def _facts_table(facts: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in facts.items()
    )
    return "<table>" + rows + "</table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render_report(
    title: str,
    metrics: Mapping[str, Any],
    plots: Mapping[str, Path],
    extra_html: str = "",
) -> str:
    """The report page for one task's metrics (as built by compare.py) and its plots."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    split = metrics.get("split", {})
    parts.append("<h2>Data and split</h2>" + _facts_table(split))
    facts = {
        k: v
        for k, v in metrics.items()
        if k not in ("models", "split", "task", "bands") and not isinstance(v, dict)
    }
    parts.append(_facts_table(facts))
    if metrics.get("selection"):
        parts.append(_selection_table(metrics["selection"]))
    models = metrics.get("models", {})
    if OURS in models and "roc_auc" in models[OURS]:
        parts.append("<h2>Ours vs the seed-style baseline</h2>" + _metrics_table(models))
        for name, m in models.items():
            if "band_confusion" in m:
                parts.append(_band_table(MODEL_LABELS.get(name, name), m["band_confusion"]))
            if "confusion_at_threshold" in m:
                c = m["confusion_at_threshold"]
                parts.append(
                    f"<p>{html.escape(MODEL_LABELS.get(name, name))} at its validation-chosen "
                    "threshold "
                    f"{_fmt(m['threshold'])}: TP {c['tp']}, FP {c['fp']}, FN {c['fn']}, "
                    f"TN {c['tn']}</p>"
                )
    else:
        parts.append(f"<p class='note'>{html.escape(str(metrics.get('note', 'no labels')))}</p>")
    parts.append(
        "<p class='note'>PR-AUC is average precision; recall at 1% FPR is the best recall "
        "among thresholds whose false-positive rate is at most 1%; precision at k counts "
        "positives among the k highest scores; the Brier score reads a score as a "
        "probability (an Isolation Forest score is not one); the expected calibration error "
        "bins probabilities into ten equal-width bins and weighs each bin's gap between mean "
        "probability and observed rate by its share of users.</p>"
    )
    parts.append(extra_html)
    parts.append("<h2>Plots</h2><div class='plots'>")
    parts.extend(_img(path) for path in plots.values())
    parts.append("</div></body></html>")
    return "\n".join(parts)


def write_report(path: Path, *args: Any, **kwargs: Any) -> Path:
    path.write_text(render_report(*args, **kwargs), encoding="utf-8")
    return path
