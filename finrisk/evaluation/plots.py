"""PNG plots comparing models on one test set: PR, ROC, calibration, score distributions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and pipeline pods

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

Scores = Mapping[str, npt.NDArray[np.float64]]

PLOT_FILES = {
    "pr": "pr_curve.png",
    "roc": "roc_curve.png",
    "calibration": "calibration.png",
    "distribution": "score_distribution.png",
}


# Legends have fixed places: loc="best" scans every plotted point, slow on 10^5-row test sets.


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pr_plot(y: npt.NDArray[np.int64], scores: Scores, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, s in scores.items():
        precision, recall, _ = precision_recall_curve(y, s)
        ax.step(recall, precision, where="post", label=name)
    ax.axhline(y.mean(), color="grey", linestyle=":", label=f"base rate {y.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return _save(fig, path)


def roc_plot(y: npt.NDArray[np.int64], scores: Scores, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.axvline(0.01, color="red", linestyle="--", linewidth=0.8, label="1% FPR")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{title}: ROC")
    ax.legend(loc="lower right")
    return _save(fig, path)


def calibration_plot(y: npt.NDArray[np.int64], scores: Scores, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, s in scores.items():
        observed, predicted = calibration_curve(y, s, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.set(xlabel="mean score", ylabel="observed positive rate", title=f"{title}: calibration")
    ax.legend(loc="upper left")
    return _save(fig, path)


def distribution_plot(
    y: npt.NDArray[np.int64] | None, scores: Scores, path: Path, title: str
) -> Path:
    fig, axes = plt.subplots(1, len(scores), figsize=(5 * len(scores), 3.8), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, (name, s) in zip(axes[0], scores.items(), strict=True):
        if y is None:
            ax.hist(s, bins=bins, color="tab:blue")
        else:
            # Densities: positives are rare, raw counts would hide their shape.
            ax.hist(s[y == 0], bins=bins, alpha=0.6, density=True, label="negative")
            ax.hist(s[y == 1], bins=bins, alpha=0.6, density=True, label="positive")
            ax.legend(loc="upper center")
        ax.set(xlabel="score", ylabel="density", title=f"{title}: {name}")
    return _save(fig, path)


def write_plots(
    y: npt.NDArray[np.int64] | None, scores: Scores, out_dir: Path, title: str
) -> dict[str, Path]:
    """All plots that the labels allow, as files in out_dir; returns kind -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "distribution": distribution_plot(y, scores, out_dir / PLOT_FILES["distribution"], title)
    }
    if y is not None and 0 < y.sum() < len(y):
        paths["pr"] = pr_plot(y, scores, out_dir / PLOT_FILES["pr"], title)
        paths["roc"] = roc_plot(y, scores, out_dir / PLOT_FILES["roc"], title)
        paths["calibration"] = calibration_plot(
            y, scores, out_dir / PLOT_FILES["calibration"], title
        )
    return paths
