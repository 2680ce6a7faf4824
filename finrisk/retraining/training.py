"""Features and training: finrisk.features and finrisk.evaluation.runs, the one training path
behind `finrisk train` (fit_detector, fit_risk on the user's data) and the pipeline's train
tasks (train_detector, train_risk over the files the previous tasks wrote).

A training stage leaves two files: the model (finrisk.models.save_model format, what the
registry logs) and the whole run (model, seed-style baseline, split and test scores, pickled),
which the evaluation stage reads so that it scores exactly the held-out rows training set aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from finrisk import features
from finrisk.errors import FinriskError
from finrisk.evaluation.inputs import RiskData
from finrisk.evaluation.runs import AnomalyRun, RiskRun, run_anomaly, run_risk
from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS
from finrisk.features.batch_merchants import merchant_features
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.features.snapshots import HISTORY_CUTOFF
from finrisk.labels import LabelRecord
from finrisk.models.anomaly import TransactionAnomalyDetector
from finrisk.models.bands import RiskBands
from finrisk.models.persistence import save_model
from finrisk.models.risk import RiskModel
from finrisk.retraining.bigquery_sample import SQL_STATS_FILE, SQL_USER_STATS_FILE
from finrisk.retraining.dataset import read_dataset, user_labels
from finrisk.retraining.label_file import read_label_records
from finrisk.schema import IS_FRAUD, IS_RISKY, TRANSACTION_ID, USER_ID


@dataclass(frozen=True)
class FeatureSummary:
    transactions: int
    users: int
    fraud_rate: float | None
    risky_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_features(
    dataset_dir: str | Path, transaction_features_path: str | Path, user_features_path: str | Path
) -> FeatureSummary:
    """Transaction features (row order of the dataset, keyed by transaction id) and user
    features with the `is_risky` label, as parquet files. The user file also holds each user's
    point-in-time snapshots (HISTORY_CUTOFF column > 0; whole histories have 0). When the
    dataset holds labels (label_file), the transaction file also holds the merchant risk
    features as served (SERVED_MERCHANT_FEATURES, as of each row's time).

    On the BigQuery SQL path (the dataset folder holds its statistics) both come from the
    statistics BigQuery computed (equal to the batch ones within 1e-9): nothing is
    recomputed in pandas, unless ingest left out recent unlabelled transactions (a labels
    table): the user features then describe the rows kept, as on the pandas path."""
    data = read_dataset(dataset_dir)
    tx = data.transactions
    sql_features = sql_transaction_features(dataset_dir, tx)
    if sql_features is not None and _left_out_unlabelled(data.manifest):
        # The users' rows here are not their whole history in the table: their features and
        # snapshots describe the rows trained on, as on the pandas path. (From the whole
        # history, the drift demo's retrained risk model lost 0.03 ROC-AUC against its
        # champion and was not promoted.)
        tx_features = sql_features
        user_table = features.user_features(tx)
        snapshots = features.history_snapshots(tx)
    elif sql_features is not None:
        tx_features = sql_features
        user_table, snapshots = _sql_user_features(dataset_dir, tx)
    else:
        tx_features, user_table = features.batch_features(tx)
        snapshots = features.history_snapshots(tx)
    tx_out = tx_features.copy()
    records = read_label_records(dataset_dir, tx)
    if records is not None:
        # Merchant risk as served, each row's from the labels known at its time: what the
        # evaluation scores a champion that reads it with, on the challenger's test rows.
        merchant = merchant_features(tx, records)[list(SERVED_MERCHANT_FEATURES)]
        tx_out = pd.concat([tx_out, merchant.set_axis(tx_out.index)], axis=1)
    tx_out.insert(0, TRANSACTION_ID, tx[TRANSACTION_ID].to_numpy())
    if IS_FRAUD in tx.columns:
        tx_out[IS_FRAUD] = tx[IS_FRAUD].to_numpy()
    labels = user_labels(data.users, user_table.index)
    users_out = user_table.copy()
    users_out[IS_RISKY] = labels.to_numpy()
    users_out[HISTORY_CUTOFF] = 0
    snapshots[IS_RISKY] = labels.loc[snapshots.index].to_numpy()
    users_out = pd.concat([users_out, snapshots])
    for path in (transaction_features_path, user_features_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    tx_out.to_parquet(transaction_features_path, index=False)
    users_out.reset_index(names=USER_ID).to_parquet(user_features_path, index=False)
    return FeatureSummary(
        transactions=len(tx),
        users=len(user_table),
        fraud_rate=float(tx[IS_FRAUD].mean()) if IS_FRAUD in tx.columns else None,
        risky_rate=float(labels.mean()),
    )


def sql_transaction_features(dataset_dir: str | Path, tx: pd.DataFrame) -> pd.DataFrame | None:
    """The transaction features of `tx` (the dataset's transactions; same index and order)
    from the SQL statistics in `dataset_dir`, None when the dataset has none (not the SQL
    path). What build_features writes and train_detector trains on: computed once from the
    statistics, not again in pandas."""
    from finrisk.features.sql import STATS_INPUTS, transaction_features_from_stats

    stats_path = Path(dataset_dir) / SQL_STATS_FILE
    if not stats_path.is_file():
        return None
    rows = pd.read_parquet(stats_path).drop_duplicates(TRANSACTION_ID).set_index(TRANSACTION_ID)
    ids = tx[TRANSACTION_ID]
    missing = ~ids.isin(rows.index)
    if missing.any():
        raise FinriskError(
            f"{SQL_STATS_FILE} has no statistics for {int(missing.sum())} transaction(s) "
            f"(first: {ids[missing].iloc[0]!r})"
        )
    joined = rows.loc[ids.to_numpy()].reset_index(drop=True)
    for column in STATS_INPUTS:
        joined[column] = tx[column].to_numpy()
    return transaction_features_from_stats(joined).set_axis(tx.index)


def _left_out_unlabelled(manifest: dict[str, Any]) -> bool:
    """Whether ingest left out recent unlabelled transactions (a labels table; data.labelled)."""
    return bool((manifest.get("labels") or {}).get("unlabelled_excluded"))


def _sql_user_features(
    dataset_dir: str | Path, tx: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(whole-history user features, snapshots with HISTORY_CUTOFF) of the users of `tx`,
    from the SQL user statistics in `dataset_dir`.

    They describe each sampled user's whole history in the table: used only when ingest kept
    it whole (build_features)."""
    from finrisk.features.sql_users import user_features_from_stats

    path = Path(dataset_dir) / SQL_USER_STATS_FILE
    if not path.is_file():
        raise FinriskError(f"{dataset_dir} has {SQL_STATS_FILE} but no {SQL_USER_STATS_FILE}")
    computed = user_features_from_stats(pd.read_parquet(path))
    computed = computed[computed.index.isin(tx[USER_ID].astype(str))]
    cutoff = computed[HISTORY_CUTOFF]
    whole = computed[cutoff == 0].drop(columns=HISTORY_CUTOFF)
    missing = sorted(set(tx[USER_ID].astype(str)) - set(whole.index))
    if missing:
        raise FinriskError(
            f"{SQL_USER_STATS_FILE} has no statistics for {len(missing)} user(s) "
            f"(first: {missing[0]!r})"
        )
    return whole, computed[cutoff > 0]


def read_user_features(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(user feature table indexed by user id, is_risky labels) from `build_features`: one
    whole-history row per user."""
    table = _read_user_file(path)
    table = table[table[HISTORY_CUTOFF] == 0] if HISTORY_CUTOFF in table.columns else table
    return table[list(features.USER_FEATURES)], table[IS_RISKY].to_numpy(dtype=np.int64)


def read_history_snapshots(path: str | Path) -> pd.DataFrame | None:
    """The point-in-time snapshot rows of `build_features` (None in a file without them)."""
    table = _read_user_file(path)
    if HISTORY_CUTOFF not in table.columns:
        return None
    return table.loc[table[HISTORY_CUTOFF] > 0, [*features.USER_FEATURES, HISTORY_CUTOFF]]


def _read_user_file(path: str | Path) -> pd.DataFrame:
    table = pd.read_parquet(path).set_index(USER_ID)
    missing = [c for c in (*features.USER_FEATURES, IS_RISKY) if c not in table.columns]
    if missing:
        raise FinriskError(f"{path} lacks user feature columns {missing}")
    return table


@dataclass(frozen=True)
class TrainingOptions:
    """How to train, the same from `finrisk train` and from the pipeline's train tasks.

    `params` go to the model (TransactionAnomalyDetector or RiskModel; unknown names are
    refused by name); for the risk model, band_low/band_high among them set the bands (or
    `bands`, not both with other values); `reasons` is how many top reasons each scored user
    keeps. For the detector, `label_delay_days` keeps the labels not yet known at the test
    start out of training (finrisk.evaluation.split) and `raw_baseline` adds the default
    boosting on raw fields to the comparison (`finrisk evaluate` sets both).
    """

    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    bands: RiskBands | None = None
    reasons: int = 3
    label_delay_days: float = 0.0
    raw_baseline: bool = False


def fit_detector(
    transactions: pd.DataFrame,
    options: TrainingOptions,
    label_records: Sequence[LabelRecord] | None = None,
    transaction_features: pd.DataFrame | None = None,
) -> AnomalyRun:
    """Ours and the seed-style detector on the early period; threshold and test on later ones.
    With `label_records`, ours also reads the merchant risk features (run_anomaly);
    `transaction_features` (of `transactions`, same index) spares computing them again."""
    return run_anomaly(
        transactions,
        seed=options.seed,
        detector_params=_params(options.params, TransactionAnomalyDetector),
        label_delay_days=options.label_delay_days,
        raw_baseline=options.raw_baseline,
        label_records=label_records,
        transaction_features=transaction_features,
    )


def fit_risk(data: RiskData, options: TrainingOptions) -> RiskRun:
    """Ours and the seed-style risk model on the training users; scored on held-out users."""
    run = run_risk(
        data.table,
        data.labels,
        feature_names=data.feature_names,
        bands=options.bands,
        seed=options.seed,
        reasons=options.reasons,
        risk_params=_params(options.params, RiskModel),
        snapshots=data.snapshots,
    )
    run.facts.update(data.facts)
    return run


def train_detector(
    dataset_dir: str | Path,
    model_path: str | Path,
    run_path: str | Path,
    options: TrainingOptions,
    label_delay_days: float = FRAUD_LABEL_DELAY_DAYS,
    merchant_risk: bool = True,
) -> AnomalyRun:
    """`fit_detector` on a dataset folder; the model and the whole run saved for the next
    stages. On the SQL path the features come from BigQuery's statistics.

    When the folder holds labels (label_file: ingest read a labels table), the detector trains
    as `finrisk train --labels` does: with merchant risk (SERVED_MERCHANT_FEATURES, from the
    labels known at each row's time) and only on labels known at the test cut-off,
    `label_delay_days` before it. Without, or with `merchant_risk` false (a detector that a
    bridge already running without merchant risk can go on serving: docs/bridge.md), it trains
    on `options` as given."""
    tx = read_dataset(dataset_dir).transactions
    records = read_label_records(dataset_dir, tx) if merchant_risk else None
    if records is not None:
        options = replace(options, label_delay_days=label_delay_days)
    run = fit_detector(
        tx, options, records, transaction_features=sql_transaction_features(dataset_dir, tx)
    )
    save_model(run.ours, model_path)
    save_run(run, run_path)
    return run


def train_risk(
    user_features_path: str | Path,
    model_path: str | Path,
    run_path: str | Path,
    options: TrainingOptions,
) -> RiskRun:
    """`fit_risk` on `build_features`' user file (whole histories, plus the point-in-time
    snapshots ours also trains on); the model and the whole run saved."""
    table, labels = read_user_features(user_features_path)
    data = RiskData(
        table=table,
        labels=labels,
        feature_names=tuple(features.USER_FEATURES),
        snapshots=read_history_snapshots(user_features_path),
    )
    run = fit_risk(data, options)
    save_model(run.ours, model_path)
    save_run(run, run_path)
    return run


def _params(params: Any, model: type[Any]) -> dict[str, Any]:
    if not params:
        return {}
    if not isinstance(params, dict):
        raise FinriskError(
            f"model parameters must be a JSON object of name -> value, got {params!r}"
        )
    known = set(model().get_params())
    unknown = sorted(set(params) - known)
    if unknown:
        raise FinriskError(
            f"unknown {model.__name__} parameter(s) {unknown}; known: {sorted(known)}"
        )
    return params


def save_run(run: AnomalyRun | RiskRun, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(run, target)
    return target


def load_run(path: str | Path, kind: type[AnomalyRun] | type[RiskRun]) -> Any:
    run = joblib.load(path)
    if not isinstance(run, kind):
        raise FinriskError(f"{path} holds a {type(run).__name__}, expected a {kind.__name__}")
    return run
