"""Evaluation: ours against the seed-style baseline on the same leak-free split.

- `split`: time split for transactions, stratified user split for the risk label;
- `runs`: the shared training procedure (fit both, pick thresholds, score the test set);
- `metrics`: ROC-AUC, PR-AUC, recall at 1% FPR, precision at k, Brier, band confusion;
- `compare`: side-by-side metrics of a run; `plots`, `report`, `outputs`: PNG, HTML, files;
- `inputs`: `--data` (dataset directory or a user's own table) to model inputs.
"""

from finrisk.evaluation.metrics import (
    band_confusion,
    binary_metrics,
    brier,
    pr_auc,
    precision_at_k,
    recall_at_fpr,
    roc_auc,
)

__all__ = [
    "band_confusion",
    "binary_metrics",
    "brier",
    "pr_auc",
    "precision_at_k",
    "recall_at_fpr",
    "roc_auc",
]
