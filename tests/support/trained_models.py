"""Tiny trained finrisk models for the registry, compiled and predictor tests (seconds to fit).

Frames are hand-made (no generator): a few informative columns, a label that depends on them,
so every model type has real splits and real probabilities to compare.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from finrisk.models import (
    RiskModel,
    SeedIsolationForestDetector,
    SeedLogisticRiskModel,
    TransactionAnomalyDetector,
)

DETECTOR_FEATURES = ("amount_z", "velocity", "night", "balance_ratio")
RISK_FEATURES = (
    "total_income",
    "total_expense",
    "low_balance_freq",
    "expense_income_ratio",
    "max_expense",
)


def detector_frame(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(np.int64)
    frame = pd.DataFrame(
        {
            "amount_z": rng.normal(0, 1, n) + 3 * y,
            "velocity": rng.poisson(2, n) + 4 * y,
            "night": (rng.random(n) < 0.2 + 0.5 * y).astype(float),
            "balance_ratio": rng.lognormal(0, 1, n) * (1 + 2 * y),
        }
    ).astype(np.float64)
    return frame, y


def risk_frame(n: int = 400, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 0.5, n)
    ratio = rng.lognormal(-0.1, 0.3, n)
    frame = pd.DataFrame(
        {
            "total_income": income,
            "total_expense": income * ratio,
            "low_balance_freq": rng.beta(1, 5, n),
            "expense_income_ratio": ratio,
            "max_expense": income * rng.uniform(0.05, 0.5, n),
        }
    )
    logit = 3 * (ratio - 1) + 4 * frame["low_balance_freq"] - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame, y


EMPLOYMENT = ("retired", "salaried", "self-employed", "student")


def risk_text_frame(n: int = 400, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """risk_frame's columns plus a text column, `employment` (with gaps), that the label
    depends on: a risk model with a categorical input."""
    frame, _ = risk_frame(n, seed)
    rng = np.random.default_rng(seed + 1)
    employment = rng.choice(EMPLOYMENT, n).astype(object)
    employment[rng.random(n) < 0.05] = None
    frame["employment"] = employment
    logit = (
        3 * (frame["expense_income_ratio"] - 1)
        + 4 * frame["low_balance_freq"]
        + 1.5 * (employment == "student")
        - 1.0 * (employment == "retired")
        - 0.5
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame, y


@cache
def detector(
    kind: str = "supervised", seed: int = 0
) -> TransactionAnomalyDetector | SeedIsolationForestDetector:
    """kind: supervised (gradient boosting), isolation (our detector without labels), seed."""
    frame, y = detector_frame(seed=seed)
    if kind == "supervised":
        return TransactionAnomalyDetector(max_iter=25, min_samples_leaf=10, random_state=seed).fit(
            frame, y
        )
    if kind == "isolation":
        return TransactionAnomalyDetector(
            mode="unsupervised", n_estimators=30, random_state=seed
        ).fit(frame)
    if kind == "seed":
        return SeedIsolationForestDetector(
            feature_names=DETECTOR_FEATURES[:3], n_estimators=30
        ).fit(frame)
    raise ValueError(kind)


@cache
def risk_model(kind: str = "hgb", seed: int = 1) -> RiskModel | SeedLogisticRiskModel:
    """kind: hgb (sigmoid calibration), hgb_isotonic, logistic, seed; hgb_text: hgb on
    risk_text_frame (a categorical input)."""
    if kind == "hgb_text":
        frame, y = risk_text_frame(seed=seed)
        return RiskModel(estimator="hgb", max_iter=20, cv=2, random_state=seed).fit(frame, y)
    frame, y = risk_frame(seed=seed)
    if kind == "hgb":
        return RiskModel(estimator="hgb", max_iter=20, cv=2, random_state=seed).fit(frame, y)
    if kind == "hgb_isotonic":
        return RiskModel(
            estimator="hgb", max_iter=20, cv=2, calibration="isotonic", random_state=seed
        ).fit(frame, y)
    if kind == "logistic":
        return RiskModel(estimator="logistic", cv=2).fit(frame, y)
    if kind == "seed":
        return SeedLogisticRiskModel().fit(frame, y)
    raise ValueError(kind)


def loaded(
    model: object, name: str, version: str = "1", profile: dict[str, object] | None = None
) -> object:
    """A registry LoadedModel built in memory (no MLflow), as finrisk.registry.load returns it."""
    from mlflow.entities.model_registry import ModelVersion

    from finrisk.compiled import compile_model, model_kind, require_parity
    from finrisk.registry import LoadedModel
    from finrisk.registry.metadata import model_metadata

    compiled = compile_model(model)
    kind = model_kind(model)
    metadata = model_metadata(
        model, kind, compiled, require_parity(model, compiled, probe=100), provenance={}, metrics={}
    )
    return LoadedModel(
        name=name,
        version=ModelVersion(name=name, version=version, creation_timestamp=0),
        model=model,
        compiled=compiled,
        metadata=metadata,
        alias="champion",
        profile=profile,
    )
