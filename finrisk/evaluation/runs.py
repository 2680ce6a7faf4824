"""Fit ours and the seed-style baseline on the same split and score the same held-out rows.

This is the training procedure every entry point shares (CLI, pipeline components):
- detector: train period -> fit, validation period -> flag threshold, test period -> scores;
- risk model: training users -> fit (calibration by internal cross-validation), test users ->
  probabilities, bands and reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from finrisk import features
from finrisk.errors import FinriskError
from finrisk.evaluation.metrics import roc_auc
from finrisk.evaluation.split import TimeSplit, UserSplit, time_split, user_split
from finrisk.features.batch_merchants import merchant_features
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.features.snapshots import HISTORY_CUTOFF, training_rows
from finrisk.labels import LabelRecord
from finrisk.models.anomaly import (
    SeedIsolationForestDetector,
    TransactionAnomalyDetector,
    seed_transaction_frame,
)
from finrisk.models.bands import DEFAULT_BANDS, RiskBands
from finrisk.models.raw_fields import RawFieldsBaseline, raw_field_frame
from finrisk.models.risk import RiskModel, SeedLogisticRiskModel
from finrisk.monitoring.profile import reference_profile
from finrisk.schema import AMOUNT, CATEGORY, CHANNEL, IS_FRAUD, TIMESTAMP, USER_ID

OURS = "ours"
BASELINE = "baseline"
# Ours trained as if the data had no labels: shows what the detector is worth without them.
OURS_UNSUPERVISED = "ours_unsupervised"
# A default HistGradientBoostingClassifier on the raw fields (finrisk.models.raw_fields).
RAW_HGB = "raw_hgb"
# Ours without the merchant risk features, beside ours with them when a run has label records:
# the features' measured gain.
OURS_NO_MERCHANT = "ours_no_merchant"
# The risk model's second baseline: a default HistGradientBoostingClassifier() on the same
# training users and the same encoded features as ours (what a data scientist tries first).
DEFAULT_HGB = "default_hgb"
_DAY_NS = 86_400 * 10**9


@dataclass
class AnomalyRun:
    ours: TransactionAnomalyDetector
    baseline: SeedIsolationForestDetector
    split: TimeSplit
    test_labels: npt.NDArray[np.int64] | None
    test_scores: dict[str, npt.NDArray[np.float64]]
    thresholds: dict[str, float]
    facts: dict[str, Any] = field(default_factory=dict)
    # Per test row: UTC day (days since the epoch) and amount, for the daily alert budget and
    # the cost-weighted loss.
    test_days: npt.NDArray[np.int64] | None = None
    test_amounts: npt.NDArray[np.float64] | None = None


@dataclass
class RiskRun:
    ours: RiskModel
    baseline: SeedLogisticRiskModel
    split: UserSplit
    test_users: pd.Index
    test_labels: npt.NDArray[np.int64]
    test_scores: dict[str, npt.NDArray[np.float64]]
    bands: RiskBands
    test_assessment: pd.DataFrame  # ours: probability, band, reasons per test user
    facts: dict[str, Any] = field(default_factory=dict)


def _short_histories(
    ours: RiskModel,
    baseline: SeedLogisticRiskModel,
    snapshots: pd.DataFrame,
    labels: pd.Series,
    test_users: pd.Index,
    bands: RiskBands,
) -> dict[str, dict[str, Any]]:
    """Both models on the held-out users' histories cut short, per cut-off day: what the
    bridge's early scores are worth."""
    out = {}
    held_out = snapshots[snapshots.index.isin(test_users)]
    for days, rows in held_out.groupby(HISTORY_CUTOFF, sort=True):
        truth = labels.loc[rows.index].to_numpy()
        if len(set(truth)) < 2:
            continue
        x = rows[list(ours.feature_names_)]
        probability = ours.risk_probability(x)
        shares = pd.Series(bands.bands(probability)).value_counts(normalize=True)
        out[str(days)] = {
            "users": len(rows),
            "roc_auc": {
                OURS: roc_auc(truth, probability),
                BASELINE: roc_auc(truth, baseline.risk_probability(x)),
            },
            "ours_band_shares": {str(b): round(float(s), 3) for b, s in shares.items()},
        }
    return out


def fraud_labels(transactions: pd.DataFrame) -> npt.NDArray[np.int64] | None:
    """`is_fraud` as 0/1, or None when the table carries no labels."""
    if IS_FRAUD not in transactions.columns or transactions[IS_FRAUD].isna().all():
        return None
    column = transactions[IS_FRAUD]
    if column.isna().any():
        raise FinriskError(f"{IS_FRAUD} is missing in {int(column.isna().sum())} rows")
    return np.asarray(column, dtype=np.int64)


def _given_features(given: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """`given` when it holds TRANSACTION_FEATURES of `transactions`' rows; else FinriskError."""
    if list(given.columns) != list(features.TRANSACTION_FEATURES):
        raise FinriskError(
            f"given transaction features have columns {list(given.columns)}, expected "
            f"{list(features.TRANSACTION_FEATURES)}"
        )
    if not given.index.equals(transactions.index):
        raise FinriskError("given transaction features are not indexed like the transactions")
    return given


def run_anomaly(
    transactions: pd.DataFrame,
    *,
    seed: int = 0,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    detector_params: dict[str, Any] | None = None,
    label_delay_days: float = 0.0,
    raw_baseline: bool = False,
    label_records: Sequence[LabelRecord] | None = None,
    transaction_features: pd.DataFrame | None = None,
    merchant_names: Sequence[str] = SERVED_MERCHANT_FEATURES,
) -> AnomalyRun:
    """Both detectors trained on the early period and scored on the latest one.

    `label_delay_days`: train and validate only on labels known at the test start
    (finrisk.evaluation.split). `raw_baseline`: also the default boosting on raw fields
    (test scores under RAW_HGB), when the training period is labelled with both classes.
    `label_records`: the confirmed-label stream (finrisk.labels); with it, ours also reads
    `merchant_names` (by default SERVED_MERCHANT_FEATURES, of MERCHANT_FEATURES), each row's
    from the labels known at its time (as-of, so no row's features see a later label), and
    ours without them is scored too (OURS_NO_MERCHANT).
    Without it ours reads TRANSACTION_FEATURES only: the merchant features would be their
    no-history value (0) on every row, and a detector needing them could not be served by a
    bridge that does not compute them (docs/bridge.md).
    `transaction_features`: TRANSACTION_FEATURES of `transactions` (same index) already
    computed (the BigQuery SQL path's), used instead of computing them again.
    """
    split = time_split(
        transactions[TIMESTAMP], validation_fraction, test_fraction, label_delay_days
    )
    labels = fraud_labels(transactions)
    tx_x = (
        features.transaction_features(transactions)
        if transaction_features is None
        else _given_features(transaction_features, transactions)
    )
    ours_names: tuple[str, ...] = features.TRANSACTION_FEATURES
    ours_x = tx_x
    if label_records is not None:
        # What the bridge serves (definitions: SERVED_MERCHANT_FEATURES): a detector trained
        # here can be registered and served.
        merchant_x = merchant_features(transactions, label_records)[list(merchant_names)]
        ours_names = (*features.TRANSACTION_FEATURES, *merchant_names)
        ours_x = pd.concat([tx_x, merchant_x], axis=1)
    seed_x = seed_transaction_frame(transactions)

    def part(y: npt.NDArray[np.int64] | None, mask: npt.NDArray[np.bool_]) -> Any:
        return None if y is None else y[mask]

    ours = TransactionAnomalyDetector(
        feature_names=ours_names, random_state=seed, **(detector_params or {})
    ).fit(ours_x[split.train], part(labels, split.train))
    baseline = SeedIsolationForestDetector(random_state=seed).fit(
        seed_x[split.train], part(labels, split.train)
    )
    for model, x in ((ours, ours_x), (baseline, seed_x)):
        model.choose_threshold(x[split.validation], part(labels, split.validation))
    test_scores = {
        OURS: ours.anomaly_score(ours_x[split.test]),
        BASELINE: baseline.anomaly_score(seed_x[split.test]),
    }
    thresholds = {OURS: ours.threshold_, BASELINE: baseline.threshold_}
    # What live traffic is compared with: logged with the registered version (profile.json).
    ours.profile_ = reference_profile(
        ours_x,
        test_scores[OURS],
        rows=split.train,
        seed=seed,
        categories={name: transactions[name] for name in (CATEGORY, CHANNEL)},
        threshold=ours.threshold_,
        # Shares per calendar phase: a day's window is compared with the same days of training.
        times=transactions[TIMESTAMP],
        score_times=transactions[TIMESTAMP][split.test],
    )
    if labels is not None and ours.metadata_["mode"] == "supervised":
        blind = TransactionAnomalyDetector(
            feature_names=features.TRANSACTION_FEATURES, mode="unsupervised", random_state=seed
        ).fit(tx_x[split.train])
        blind.choose_threshold(tx_x[split.validation])
        test_scores[OURS_UNSUPERVISED] = blind.anomaly_score(tx_x[split.test])
        thresholds[OURS_UNSUPERVISED] = blind.threshold_
    if labels is not None and label_records is not None:
        plain = TransactionAnomalyDetector(
            feature_names=features.TRANSACTION_FEATURES,
            random_state=seed,
            **(detector_params or {}),
        ).fit(tx_x[split.train], part(labels, split.train))
        plain.choose_threshold(tx_x[split.validation], part(labels, split.validation))
        test_scores[OURS_NO_MERCHANT] = plain.anomaly_score(tx_x[split.test])
        thresholds[OURS_NO_MERCHANT] = plain.threshold_
    trained_labels = part(labels, split.train)
    if raw_baseline and trained_labels is not None and trained_labels.min() < trained_labels.max():
        raw_x = raw_field_frame(transactions)
        raw = RawFieldsBaseline(random_state=seed).fit(raw_x[split.train], trained_labels)
        test_scores[RAW_HGB] = raw.anomaly_score(raw_x[split.test])
    test_times = pd.to_datetime(transactions[TIMESTAMP][split.test], utc=True)
    return AnomalyRun(
        ours=ours,
        baseline=baseline,
        split=split,
        test_labels=part(labels, split.test),
        test_scores=test_scores,
        thresholds=thresholds,
        facts={
            "rows": len(transactions),
            "labelled": labels is not None,
            "fraud_rate": None if labels is None else float(labels.mean()),
            "ours_mode": ours.metadata_["mode"],
            "merchant_features": label_records is not None,
            "test_users": int(transactions[USER_ID][split.test].nunique()),
        },
        test_days=test_times.to_numpy(dtype="datetime64[ns]").astype(np.int64) // _DAY_NS,
        test_amounts=np.asarray(transactions[AMOUNT][split.test], dtype=np.float64),
    )


def seed_feature_names(columns: Sequence[str]) -> tuple[str, ...]:
    """The seed's eight aggregates when the table has them all, else every feature given."""
    seed = tuple(features.SEED_USER_FEATURES)
    return seed if set(seed) <= set(columns) else tuple(columns)


# RiskModel parameters a run sets itself: the features it is given and its seed.
_RUN_SET = {"feature_names": "the run's features", "random_state": "the run's seed"}


def _risk_params_and_bands(
    risk_params: dict[str, Any] | None, bands: RiskBands | None
) -> tuple[dict[str, Any], RiskBands]:
    params = dict(risk_params or {})
    for name, source in _RUN_SET.items():
        if name in params:
            raise FinriskError(f"risk parameter {name!r} is set by {source}, not by parameters")
    edges = {name: params.pop(name) for name in ("band_low", "band_high") if name in params}
    if not edges:
        return params, bands or DEFAULT_BANDS
    given = RiskBands(
        low=edges.get("band_low", (bands or DEFAULT_BANDS).low),
        high=edges.get("band_high", (bands or DEFAULT_BANDS).high),
    )
    if bands is not None and bands != given:
        raise FinriskError(f"risk parameters set bands {given} against the run's {bands}")
    return params, given


def run_risk(
    user_table: pd.DataFrame,
    labels: npt.ArrayLike,
    *,
    feature_names: Sequence[str] | None = None,
    bands: RiskBands | None = None,
    seed: int = 0,
    test_fraction: float = 0.3,
    reasons: int = 3,
    risk_params: dict[str, Any] | None = None,
    snapshots: pd.DataFrame | None = None,
) -> RiskRun:
    """Both risk models trained on the same users and scored on the same held-out users, and
    the default boosting (DEFAULT_HGB, test scores only) beside them.

    `user_table` is indexed by user id with one numeric column per feature. `snapshots`
    (`finrisk.features.history_snapshots`): point-in-time rows; ours also trains on those of
    its training users (the seed-style model, as the seed did, on whole histories only).
    `risk_params` go to RiskModel; band_low and band_high among them set the bands of both
    models (the pipeline's one way to set them), and may not contradict `bands`.
    """
    params, bands = _risk_params_and_bands(risk_params, bands)
    names = tuple(feature_names) if feature_names is not None else tuple(user_table.columns)
    y = np.asarray(labels).astype(np.int64)
    split = user_split(y, test_fraction, seed)
    train_x, test_x = user_table.iloc[split.train], user_table.iloc[split.test]
    ours_x, ours_y = training_rows(train_x, y[split.train], snapshots)
    ours = RiskModel(
        feature_names=names, random_state=seed, band_low=bands.low, band_high=bands.high, **params
    ).fit(ours_x, ours_y)
    baseline = SeedLogisticRiskModel(
        feature_names=seed_feature_names(names), band_low=bands.low, band_high=bands.high
    ).fit(train_x, y[split.train])
    default_hgb = HistGradientBoostingClassifier(random_state=seed).fit(
        ours.encode(train_x), y[split.train]
    )
    assessment = ours.assess(test_x, k=reasons)
    # No calendar phases: a user's row (or snapshot) stands for a whole history, not one time.
    # Profiled as the model reads them (and the predictor receives them): categories as codes.
    ours.profile_ = reference_profile(
        pd.DataFrame(ours.encode(ours_x), columns=list(names)),
        assessment["probability"].to_numpy(),
        seed=seed,
        bands=assessment["band"].tolist(),
    )
    facts: dict[str, Any] = {
        "users": len(user_table),
        "risky_rate": float(y.mean()),
        "history_snapshot_rows": len(ours_x) - len(train_x),
    }
    if snapshots is not None and not snapshots.empty:
        facts["short_histories"] = _short_histories(
            ours, baseline, snapshots, pd.Series(y, index=user_table.index), test_x.index, bands
        )
    return RiskRun(
        ours=ours,
        baseline=baseline,
        split=split,
        test_users=test_x.index,
        test_labels=y[split.test],
        test_scores={
            OURS: assessment["probability"].to_numpy(),
            BASELINE: baseline.risk_probability(test_x),
            DEFAULT_HGB: default_hgb.predict_proba(ours.encode(test_x))[:, 1],
        },
        bands=bands,
        test_assessment=assessment,
        facts=facts,
    )
