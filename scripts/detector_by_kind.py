"""Where the detector wins and loses on the hard scenario, per fraud kind and look-alike kind.

Runs the detectors as `finrisk evaluate` does (`run_anomaly` with the raw-fields boosting, the
generator's label stream and the 7-day label delay) on the hard scenario, and prints per seed:
average precision and recall at 1% FPR of ours and of the default boosting on raw fields
(RAW_HGB), their ratio, ours' average precision on the validation period (the days before the
label cut-off, where features and settings are chosen; the test period is only reported), and
per kind the share of the test rows each detector alerts on
within the daily alert budget and above its own 1%-FPR threshold. For a fraud kind that share
is its recall; for a look-alike kind (legitimate) it is the share falsely alerted on.

    .venv/bin/python scripts/detector_by_kind.py [--seeds 7 8 9] [--users 5000] [--days 120]
        [--params '{"max_iter": 300}']

docs/models-and-evaluation.md quotes it (about 3 minutes per seed at the documented size).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from finrisk.evaluation.compare import daily_alert_budget
from finrisk.evaluation.metrics import daily_alerts, pr_auc, recall_at_fpr
from finrisk.evaluation.runs import OURS, RAW_HGB, run_anomaly
from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS
from finrisk.features import transaction_features
from finrisk.features.batch_merchants import merchant_features
from finrisk.schema import FRAUD_TYPE, IS_FRAUD, NO_FRAUD
from finrisk.synthetic import BENCHMARK_DAYS, BENCHMARK_USERS, generate
from finrisk.synthetic import generator as _generator
from finrisk.synthetic.hard import HARD, LOOK_ALIKES, PATTERN_CODE


def _generate_with_patterns(users: int, days: int, seed: int) -> tuple[pd.DataFrame, Any]:
    """The hard scenario's transactions and each row's look-alike pattern code.

    No output column says which rows are look-alikes (a detector must not read it), so the
    codes are taken where the generator assembles its rows: a wrapper around `_assemble`.
    """
    captured: dict[str, Any] = {}
    assemble = _generator._assemble

    def keep(*args: Any, **kwargs: Any) -> Any:
        frame, patterns = assemble(*args, **kwargs)
        captured["patterns"] = patterns
        return frame, patterns

    _generator._assemble = keep  # type: ignore[assignment]
    try:
        transactions, _, _ = generate(users, days, seed, scenario=HARD)
    finally:
        _generator._assemble = assemble  # type: ignore[assignment]
    return transactions, np.asarray(captured["patterns"])


def _above_fpr(y: npt.NDArray[np.int64], s: npt.NDArray[np.float64], fpr: float) -> Any:
    """Rows at or above the lowest threshold whose false-positive rate is at most `fpr`."""
    negatives = np.sort(s[y == 0])[::-1]
    allowed = int(np.floor(fpr * len(negatives)))
    # The threshold sits just above the (allowed+1)-th highest negative score.
    cut = negatives[allowed] if allowed < len(negatives) else -np.inf
    return s > cut


def by_kind(users: int, days: int, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    from finrisk.synthetic.labels import synthetic_labels

    transactions, patterns = _generate_with_patterns(users, days, seed)
    label_records = synthetic_labels(transactions, seed)
    # Computed once and handed to the run, so that the validation rows are scored on the
    # very features ours was trained on.
    tx_x = transaction_features(transactions)
    run = run_anomaly(
        transactions,
        seed=seed,
        detector_params=params,
        label_delay_days=FRAUD_LABEL_DELAY_DAYS,
        raw_baseline=True,
        label_records=label_records,
        transaction_features=tx_x,
    )
    merchant_x = merchant_features(transactions, label_records)
    validation = run.split.validation
    ours_validation = run.ours.anomaly_score(pd.concat([tx_x, merchant_x], axis=1)[validation])
    assert run.test_labels is not None and run.test_days is not None
    y = run.test_labels
    kinds = transactions[FRAUD_TYPE][run.split.test].to_numpy()
    looks = patterns[run.split.test]
    budget = daily_alert_budget(run.facts["test_users"])
    out: dict[str, Any] = {
        "seed": seed,
        "test_rows": len(y),
        "test_frauds": int(y.sum()),
        "ours_validation_pr_auc": pr_auc(
            transactions[IS_FRAUD][validation].to_numpy(dtype=np.int64), ours_validation
        ),
    }
    groups = {k: kinds == k for k in sorted(set(kinds) - {NO_FRAUD})}
    groups.update({k: looks == PATTERN_CODE[k] for k in LOOK_ALIKES})
    for model in (OURS, RAW_HGB):
        s = run.test_scores[model]
        alerts = daily_alerts(s, run.test_days, budget)
        flagged = _above_fpr(y, s, 0.01)
        out[model] = {
            "pr_auc": pr_auc(y, s),
            "recall_at_1pct_fpr": recall_at_fpr(y, s, 0.01),
            "by_kind": {
                kind: {
                    "rows": int(rows.sum()),
                    "budget": float(alerts[rows].mean()) if rows.any() else 0.0,
                    "fpr1": float(flagged[rows].mean()) if rows.any() else 0.0,
                }
                for kind, rows in groups.items()
            },
        }
    out["pr_auc_ratio"] = out[OURS]["pr_auc"] / out[RAW_HGB]["pr_auc"]
    return out


def render(result: dict[str, Any]) -> str:
    ours, raw = result[OURS], result[RAW_HGB]
    lines = [
        f"seed {result['seed']}: {result['test_rows']} test rows, {result['test_frauds']} frauds; "
        f"AP ours {ours['pr_auc']:.3f} raw {raw['pr_auc']:.3f} "
        f"ratio {result['pr_auc_ratio']:.2f}x; "
        f"ours validation AP {result['ours_validation_pr_auc']:.3f}; "
        f"recall@1%FPR ours {ours['recall_at_1pct_fpr']:.3f} raw {raw['recall_at_1pct_fpr']:.3f}",
        "| kind (test rows) | ours budget | raw budget | ours @1%FPR | raw @1%FPR |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, o in ours["by_kind"].items():
        r = raw["by_kind"][kind]
        lines.append(
            f"| {kind} ({o['rows']}) | {o['budget']:.2f} | {r['budget']:.2f} | "
            f"{o['fpr1']:.2f} | {r['fpr1']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--users", type=int, default=BENCHMARK_USERS)
    parser.add_argument("--days", type=int, default=BENCHMARK_DAYS)
    parser.add_argument("--params", type=json.loads, default={}, help="detector params, JSON")
    args = parser.parse_args()
    for seed in args.seeds:
        print(render(by_kind(args.users, args.days, seed, args.params)), flush=True)


if __name__ == "__main__":
    main()
