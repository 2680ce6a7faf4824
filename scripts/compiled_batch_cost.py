"""Where the compiled detector's time goes as batches grow, in process (docs/serving.md quotes
it): the tree ensemble alone and the whole score, per row, one thread, for the same rows every
call and for rows not seen in the previous calls (what `finrisk bench serving` times), on each
tree engine side by side: ONNX Runtime, our numba kernel (finrisk.compiled.jit) and, when it is
installed (it is not a dependency: `uv pip install tl2cgen treelite`), TL2cgen's C compilation
of the same sklearn model for reference.

Synthetic transactions (the demo's generator), the detector trained as the benchmark trains
it, compiled as the predictor serves it. The calling thread's CPU time, median per call: on a
shared machine the wall clock of a long call includes the time other processes held the core
(a short call often dodges that, which alone makes small batches look cheaper per row).
    OMP_NUM_THREADS=1 .venv/bin/python scripts/compiled_batch_cost.py [USERS] [DAYS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from finrisk.compiled import compile_model, jit, runtime
from finrisk.compiled.forest import forest_from_graph
from finrisk.features import TRANSACTION_FEATURES, transaction_features
from finrisk.models import TransactionAnomalyDetector, seed_transaction_frame
from finrisk.synthetic import generate

BATCHES = (1, 10, 100, 1000, 10_000)


def _median_us_per_row(call: Callable[[int], object], rows: int, calls: int) -> float:
    times = []
    for k in range(calls):
        started = time.thread_time()
        call(k)
        times.append(time.thread_time() - started)
    return float(np.median(times)) / rows * 1e6


def main(users: int = 400, days: int = 90) -> None:
    transactions, _, _ = generate(users, days, 7)
    tx = transaction_features(transactions)
    seed = seed_transaction_frame(transactions)
    tx = pd.concat([tx, seed.loc[:, [c for c in seed if c not in tx]]], axis=1)
    model = TransactionAnomalyDetector().fit(
        tx.loc[:, list(TRANSACTION_FEATURES)], transactions["is_fraud"]
    )
    started = time.perf_counter()
    compiled = compile_model(model, threads=1, engine="onnx")
    assert compiled.graph is not None
    kernel = jit.evaluator(forest_from_graph(compiled.graph, compiled.n_features, 1))
    print(f"numba kernel ready in {time.perf_counter() - started:.2f} s (with the ONNX compile)")
    fast = compiled.with_engine("jit")
    pool = compiled._prepared(tx.loc[:, list(compiled.feature_names)].to_numpy(np.float64))
    session = compiled._single
    assert session is not None
    tl2cgen_raw = _tl2cgen(model.estimator_)
    print(f"{len(pool):,} transactions, {compiled.n_features} features; CPU µs per row (median):")
    print(
        "rows    onnx same  onnx fresh  jit same  jit fresh  tl2cgen fresh  "
        "score onnx fresh  score jit fresh"
    )
    for rows in BATCHES:
        if rows * 2 > len(pool):
            print(f"{rows:<7} (fewer than {2 * rows} transactions: not enough fresh rows)")
            continue
        calls = max(20, min(2000, 40_000 // rows))
        starts = [(k * rows) % (len(pool) - rows) for k in range(calls)]
        chunks = [np.ascontiguousarray(pool[s : s + rows]) for s in starts]
        same = chunks[0]

        def onnx_trees(x: np.ndarray) -> object:
            return session.run(None, {runtime.INPUT: x})

        figures = [
            _median_us_per_row(lambda _k, same=same: onnx_trees(same), rows, calls),
            _median_us_per_row(lambda k, chunks=chunks: onnx_trees(chunks[k]), rows, calls),
            _median_us_per_row(lambda _k, same=same: kernel(same), rows, calls),
            _median_us_per_row(lambda k, chunks=chunks: kernel(chunks[k]), rows, calls),
            _median_us_per_row(lambda k, chunks=chunks: tl2cgen_raw(chunks[k]), rows, calls)
            if tl2cgen_raw is not None
            else float("nan"),
            _median_us_per_row(lambda k, chunks=chunks: compiled.score(chunks[k]), rows, calls),
            _median_us_per_row(lambda k, chunks=chunks: fast.score(chunks[k]), rows, calls),
        ]
        print(f"{rows:<7} " + " ".join(f"{v:10.3f}" for v in figures))
    print(f"load average {os.getloadavg()[0]:.2f}")


def _tl2cgen(estimator: object) -> Callable[[np.ndarray], object] | None:
    """TL2cgen's compiled C for the same sklearn model (raw margins), or None if not installed."""
    try:
        import tl2cgen
        import treelite
    except ImportError:
        print("tl2cgen not installed: its column is nan")
        return None
    started = time.perf_counter()
    library = Path(tempfile.mkdtemp()) / "trees.so"
    tl2cgen.export_lib(
        treelite.sklearn.import_model(estimator), toolchain="gcc", libpath=str(library)
    )
    predictor = tl2cgen.Predictor(str(library), nthread=1)
    print(f"tl2cgen compiled the trees in {time.perf_counter() - started:.1f} s")

    def raw(x: np.ndarray) -> object:
        return predictor.predict(tl2cgen.DMatrix(x, dtype="float64"), pred_margin=True)

    return raw


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
