"""Throughput of the feature paths on synthetic data: what `finrisk bench features` prints.

- batch: `batch_features` (transaction and user features) on the whole table, end to end
  from the canonical DataFrame; best of `repeats` runs after a small warm-up;
- online: one `OnlineFeatures` in this process, fed every transaction in streaming order as
  a dict with an epoch-millisecond timestamp (the bridge's wire form), the bridge's way: in
  micro-batches of 2000 (`observe`: the users' states in rounds, the formulas on arrays),
  transaction and user features; beside it, the same engine fed one transaction per call, on
  the first ONE_AT_A_TIME transactions (it is far slower); building the dicts is not timed;
- alternative: what one would write with plain pandas, `groupby(user).rolling("24h")`, for
  the 24 h velocity count and debit sum alone, on the same data.

Wall-clock figures are the headline; CPU-time figures are printed beside them because a
busy machine slows the wall clock but hardly the CPU time.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from finrisk.bench.history import AT, COMMIT, LOAD, Column, Headline, Run, load_average_1m
from finrisk.features.batch import batch_features
from finrisk.features.online import OnlineFeatures
from finrisk.schema import AMOUNT, DEBIT, DIRECTION, TIMESTAMP, TRANSACTION_ID, USER_ID

BATCH_TARGET_TX_PER_S = 200_000
ONLINE_TARGET_TX_PER_S = 50_000
_CHUNK = 50_000
MICRO_BATCH = 2_000  # the bridge's default batch_max_messages
ONE_AT_A_TIME = 10_000


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def _rates(n: int, wall: float, cpu: float) -> dict[str, float]:
    return {
        "seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "tx_per_s": round(n / wall),
        "cpu_tx_per_s": round(n / cpu) if cpu > 0 else float("nan"),
    }


def _log(message: str) -> None:
    print(f"bench features: {message}", file=sys.stderr, flush=True)


def bench_batch(transactions: pd.DataFrame, repeats: int) -> dict[str, Any]:
    batch_features(transactions.head(2_000))  # imports, allocator and caches
    runs = [_timed(lambda: batch_features(transactions)) for _ in range(repeats)]
    wall, cpu = min(runs)
    return {
        **_rates(len(transactions), wall, cpu),
        "runs_seconds": [round(r[0], 4) for r in runs],
        "covers": "transaction + user features from the canonical DataFrame",
        "target_tx_per_s": BATCH_TARGET_TX_PER_S,
    }


def bench_online(transactions: pd.DataFrame) -> dict[str, Any]:
    stream = transactions.sort_values([TIMESTAMP, USER_ID, TRANSACTION_ID])
    stream = stream.assign(**{TIMESTAMP: stream[TIMESTAMP].array.asi8 // 1_000_000})
    online = OnlineFeatures()
    wall = cpu = 0.0
    for start in range(0, len(stream), _CHUNK):
        records = stream.iloc[start : start + _CHUNK].to_dict("records")
        chunk_wall, chunk_cpu = _timed(functools.partial(_micro_batches, online, records))
        wall += chunk_wall
        cpu += chunk_cpu
    first = stream.iloc[:ONE_AT_A_TIME].to_dict("records")
    single_wall, single_cpu = _timed(functools.partial(_one_at_a_time, OnlineFeatures(), first))
    users = list(online.users())
    user_wall, _ = _timed(lambda: [online.user_features(u) for u in users])
    snapshot_wall, _ = _timed(lambda: [online.saved_state(u) for u in users])
    return {
        **_rates(len(stream), wall, cpu),
        "covers": f"transaction + user features per transaction, micro-batches of {MICRO_BATCH}",
        "timestamp_form": "epoch milliseconds",
        "one_at_a_time": {
            **_rates(len(first), single_wall, single_cpu),
            "covers": f"the same, one transaction per call, the first {len(first)} transactions",
        },
        "user_features_per_s": round(len(users) / user_wall),
        "snapshots_per_s": round(len(users) / snapshot_wall),
        "target_tx_per_s": ONLINE_TARGET_TX_PER_S,
    }


def _micro_batches(online: OnlineFeatures, records: list[Any]) -> None:
    for start in range(0, len(records), MICRO_BATCH):
        online.observe(records[start : start + MICRO_BATCH])


def _one_at_a_time(online: OnlineFeatures, records: list[Any]) -> None:
    observe = online.observe
    for record in records:
        observe([record])


def bench_pandas_rolling(transactions: pd.DataFrame) -> dict[str, Any]:
    """The usual pandas way to a per-user 24 h count and debit sum (no other feature)."""

    def rolling() -> None:
        frame = transactions.sort_values([USER_ID, TIMESTAMP, TRANSACTION_ID])
        debit = frame[AMOUNT].where(frame[DIRECTION] == DEBIT, 0.0)
        frame = frame.assign(debit_amount=debit).set_index(TIMESTAMP)
        frame.groupby(USER_ID)["debit_amount"].rolling("24h").agg(["count", "sum"])

    wall, cpu = _timed(rolling)
    return {
        **_rates(len(transactions), wall, cpu),
        "covers": "24 h count and debit sum only, pandas groupby().rolling('24h')",
    }


def run(users: int, days: int, seed: int, repeats: int = 3) -> dict[str, Any]:
    """Generate the data, measure every path, return the JSON-able figures."""
    from finrisk.synthetic import generate

    load = load_average_1m()  # before the run's own work adds to it
    _log(f"generating {users} users x {days} days (seed {seed})")
    transactions, _, _ = generate(users=users, days=days, seed=seed)
    n = len(transactions)
    _log(f"{n} transactions; batch path x{repeats}")
    batch = bench_batch(transactions, repeats)
    _log("online path")
    online = bench_online(transactions)
    _log("pandas rolling alternative")
    alternative = bench_pandas_rolling(transactions)
    return {
        "data": {
            "users": users,
            "days": days,
            "seed": seed,
            "transactions": n,
            "transactions_per_user": round(n / users, 1),
        },
        "batch": batch,
        "online": online,
        "alternative_pandas_rolling": alternative,
        "meets_targets": {
            "batch": batch["tx_per_s"] >= BATCH_TARGET_TX_PER_S,
            "online": online["tx_per_s"] >= ONLINE_TARGET_TX_PER_S,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": load,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
    }


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures a run keeps in the benchmark's history."""
    online = result["online"]
    return {
        "transactions": result["data"]["transactions"],
        "batch_tx_per_s": result["batch"]["tx_per_s"],
        "batch_cpu_tx_per_s": result["batch"]["cpu_tx_per_s"],
        "online_tx_per_s": online["tx_per_s"],
        "online_cpu_tx_per_s": online["cpu_tx_per_s"],
        "one_at_a_time_tx_per_s": online["one_at_a_time"]["tx_per_s"],
        "pandas_rolling_tx_per_s": result["alternative_pandas_rolling"]["tx_per_s"],
    }


def _rate(key: str) -> Column:
    header = key.removesuffix("_tx_per_s").replace("_", " ")
    return Column(f"{header} tx/s", lambda run: f"{run['figures'][key]:,.0f}")


HISTORY_COLUMNS = (
    AT,
    COMMIT,
    Column("transactions", lambda run: f"{run['figures']['transactions']:,}"),
    _rate("batch_tx_per_s"),
    _rate("pandas_rolling_tx_per_s"),
    _rate("online_tx_per_s"),
    _rate("one_at_a_time_tx_per_s"),
    LOAD,
)

COMPARES = "batch and online features against plain pandas and one transaction per call"


def headlines(run: Run) -> list[Headline]:
    """A run's figures beside their alternatives, for the summary of every benchmark."""
    figures, settings = run["figures"], run["settings"]
    return [
        Headline(
            f"batch: transaction + user features, {figures['transactions']:,} transactions",
            figures["batch_tx_per_s"],
            "tx/s",
            "pandas `groupby().rolling('24h')`, 24 h count and debit sum only",
            figures["pandas_rolling_tx_per_s"],
        ),
        Headline(
            f"online, the bridge's path: micro-batches of {settings['micro_batch']:,}",
            figures["online_tx_per_s"],
            "tx/s",
            "the same engine, one transaction per call",
            figures["one_at_a_time_tx_per_s"],
        ),
    ]
