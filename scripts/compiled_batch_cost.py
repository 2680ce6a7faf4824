"""Where the compiled detector's time goes as batches grow, in process (docs/serving.md quotes
it): the ONNX tree ensemble alone and the whole score, per row, one thread, for the same rows
every call (what `finrisk bench serving` times) and for rows not seen in the previous calls.

Synthetic transactions (the demo's generator), the detector trained as the benchmark trains
it, compiled as the predictor serves it. Medians, not minima: on a shared machine a short
call's minimum dodges preemption that a long call cannot, which alone makes small batches look
cheaper per row.
    OMP_NUM_THREADS=1 .venv/bin/python scripts/compiled_batch_cost.py [USERS] [DAYS]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from finrisk.compiled import compile_model, runtime
from finrisk.features import TRANSACTION_FEATURES, transaction_features
from finrisk.models import TransactionAnomalyDetector, seed_transaction_frame
from finrisk.synthetic import generate

BATCHES = (1, 10, 100, 1000, 10_000)


def _median_us_per_row(call: Callable[[int], object], rows: int, calls: int) -> float:
    times = []
    for k in range(calls):
        started = time.perf_counter()
        call(k)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) / rows * 1e6


def main(users: int = 400, days: int = 90) -> None:
    transactions, _, _ = generate(users, days, 7)
    tx = transaction_features(transactions)
    seed = seed_transaction_frame(transactions)
    tx = pd.concat([tx, seed.loc[:, [c for c in seed if c not in tx]]], axis=1)
    model = TransactionAnomalyDetector().fit(
        tx.loc[:, list(TRANSACTION_FEATURES)], transactions["is_fraud"]
    )
    compiled = compile_model(model, threads=1)
    pool = compiled._prepared(tx.loc[:, list(compiled.feature_names)].to_numpy(np.float64))
    session = compiled._single
    assert session is not None
    print(f"{len(pool):,} transactions, {compiled.n_features} features; µs per row (median):")
    print("rows    trees, same rows  trees, fresh rows  score, fresh rows")
    for rows in BATCHES:
        if rows * 2 > len(pool):
            print(f"{rows:<7} (fewer than {2 * rows} transactions: not enough fresh rows)")
            continue
        calls = max(20, min(2000, 40_000 // rows))
        starts = [(k * rows) % (len(pool) - rows) for k in range(calls)]
        chunks = [np.ascontiguousarray(pool[s : s + rows]) for s in starts]
        same = chunks[0]
        trees_same = _median_us_per_row(
            lambda _k, same=same: session.run(None, {runtime.INPUT: same}), rows, calls
        )
        trees_fresh = _median_us_per_row(
            lambda k, chunks=chunks: session.run(None, {runtime.INPUT: chunks[k]}), rows, calls
        )
        score_fresh = _median_us_per_row(
            lambda k, chunks=chunks: compiled.score(chunks[k]), rows, calls
        )
        print(f"{rows:<7} {trees_same:16.3f} {trees_fresh:18.3f} {score_fresh:18.3f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
