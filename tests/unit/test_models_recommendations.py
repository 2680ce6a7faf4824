"""The counterfactual recommendations (finrisk.models.recommendations), against compiled models:
each recommendation's changes, applied to the row and scored, give its promised probability and
a lower band; LOW rows get none; bounds hold; the search is deterministic."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pandas as pd
import pytest

from finrisk.compiled import CompiledModel, compile_model
from finrisk.features import USER_FEATURES
from finrisk.models import RiskModel
from finrisk.models.bands import BAND_NAMES, HIGH, LOW, RiskBands
from finrisk.models.recommendations import (
    LEVERS,
    MAX_LEVERS,
    Recommendation,
    RecommendationSearch,
)
from tests.support import trained_models

RANK = {name: i for i, name in enumerate(BAND_NAMES)}


def user_frame(n: int = 600, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    """All 38 user features, the habits the levers move driving the label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.lognormal(0, 0.5, (n, len(USER_FEATURES))), columns=list(USER_FEATURES)
    )
    income = rng.lognormal(8, 0.4, n)
    ratio = rng.lognormal(-0.1, 0.3, n)
    frame["total_income"] = income
    frame["total_expense"] = income * ratio
    frame["expense_income_ratio"] = ratio
    frame["recent_expense_income_ratio"] = ratio * rng.uniform(0.8, 1.2, n)
    frame["active_days"] = rng.uniform(60, 365, n)
    frame["avg_expense"] = frame["total_expense"] / rng.integers(20, 200, n)
    frame["expense_per_month"] = frame["total_expense"] / (frame["active_days"] / 30.4375)
    frame["income_per_month"] = income / (frame["active_days"] / 30.4375)
    frame["net_flow_per_month"] = frame["income_per_month"] - frame["expense_per_month"]
    frame["discretionary_share"] = rng.beta(2, 5, n)
    frame["essential_share"] = (1 - frame["discretionary_share"]) * rng.uniform(0.3, 0.9, n)
    frame["cash_out_share"] = rng.beta(1, 8, n)
    frame["gambling_tx_per_month"] = np.where(rng.random(n) < 0.4, rng.gamma(2, 2, n), 0.0)
    frame["distress_share"] = np.clip(
        rng.beta(1, 6, n) + 0.02 * frame["gambling_tx_per_month"], 0, 1
    )
    frame["recent_distress_share"] = frame["distress_share"] * rng.uniform(0.8, 1.2, n)
    frame["overdraft_freq"] = rng.beta(1, 8, n)
    frame["recent_overdraft_share"] = frame["overdraft_freq"] * rng.uniform(0.5, 1.5, n)
    frame["low_balance_freq"] = frame["overdraft_freq"] + rng.beta(1, 6, n)
    frame["recent_low_balance_share"] = frame["low_balance_freq"] * rng.uniform(0.8, 1.2, n)
    logit = (
        2.5 * (ratio - 1)
        + 0.35 * frame["gambling_tx_per_month"]
        + 8 * frame["overdraft_freq"]
        + 3 * frame["discretionary_share"]
        - 2.0
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame.astype(np.float64), y


@cache
def user_model(estimator: str) -> tuple[RiskModel, CompiledModel]:
    frame, y = user_frame()
    model = RiskModel(estimator=estimator, cv=2, max_iter=30).fit(frame, y)
    return model, compile_model(model)


def search_of(compiled: CompiledModel, bands: RiskBands) -> RecommendationSearch:
    return RecommendationSearch(compiled.score, compiled.feature_names, bands)


def applied(row: np.ndarray, names: tuple[str, ...], rec: dict) -> np.ndarray:
    """The row with a recommendation's JSON changes applied: what a client would do."""
    changed = row.copy()
    index = {name: j for j, name in enumerate(names)}
    for change in rec["changes"]:
        assert changed[index[change["feature"]]] == change["from"]
        changed[index[change["feature"]]] = change["to"]
    return changed


def elevated_rows(compiled: CompiledModel, bands: RiskBands, n: int = 40) -> np.ndarray:
    frame, _ = user_frame(n=400, seed=9)
    values = frame[list(compiled.feature_names)].to_numpy()
    band = bands.bands(compiled.score(values))
    return values[band != LOW][:n]


@pytest.mark.parametrize("estimator", ["logistic", "hgb"])
def test_each_recommendation_scored_gives_its_probability_and_a_lower_band(
    estimator: str,
) -> None:
    _, compiled = user_model(estimator)
    bands = RiskBands(low=0.4, high=0.7)
    search = search_of(compiled, bands)
    rows = elevated_rows(compiled, bands)
    assert len(rows) >= 10
    seen = 0
    probabilities = compiled.score(rows)
    for row, recs, p in zip(rows, search.search(rows, probabilities), probabilities, strict=True):
        assert recs is not None
        for rec in recs:
            doc = json.loads(json.dumps(rec.to_dict()))  # through JSON, as served
            rescored = float(compiled.score(applied(row, compiled.feature_names, doc)[None, :])[0])
            assert rescored == pytest.approx(doc["probability"], abs=1e-12)
            assert bands.band(rescored) == doc["band"]
            assert RANK[doc["band"]] < RANK[bands.band(float(p))]
            seen += 1
    assert seen >= 10


def test_bounds_directions_and_cost() -> None:
    _, compiled = user_model("logistic")
    bands = RiskBands(low=0.4, high=0.7)
    search = search_of(compiled, bands)
    rows = elevated_rows(compiled, bands)
    bounds = {lever.name: lever.max_reduction for lever in LEVERS}
    moves = {lever.name: set(lever.moves) for lever in LEVERS}
    for row, recs in zip(rows, search.search(rows, compiled.score(rows)), strict=True):
        for rec in recs or []:
            assert 1 <= len(rec.actions) <= MAX_LEVERS
            assert rec.cost == pytest.approx(sum(r for _, r in rec.actions))
            allowed = set().union(*(moves[name] for name, _ in rec.actions))
            for name, r in rec.actions:
                assert 0 < r <= bounds[name]
            for change in rec.changes:
                assert change.feature in allowed
                assert change.after >= 0 or change.feature == "net_flow_per_month"
                if change.feature == "net_flow_per_month":
                    assert change.after > change.before  # spending less frees money
                else:
                    shares_up = change.feature in ("essential_share", "cash_out_share")
                    assert (change.after > change.before) == shares_up
            after = dict(zip(compiled.feature_names, row, strict=True))
            after.update({c.feature: c.after for c in rec.changes})
            assert after["low_balance_freq"] >= after["overdraft_freq"]
            # Dependent features stay consistent with the formulas.
            assert after["expense_income_ratio"] == pytest.approx(
                after["total_expense"] / after["total_income"], rel=1e-9
            ) or after["expense_income_ratio"] == pytest.approx(
                dict(zip(compiled.feature_names, row, strict=True))["expense_income_ratio"]
                * after["total_expense"]
                / dict(zip(compiled.feature_names, row, strict=True))["total_expense"],
                rel=1e-9,
            )
            before_net = dict(zip(compiled.feature_names, row, strict=True))
            assert after["net_flow_per_month"] - before_net["net_flow_per_month"] == pytest.approx(
                before_net["expense_per_month"] - after["expense_per_month"], rel=1e-9
            )


def test_cheapest_first_and_no_superset_of_a_cheaper_answer() -> None:
    _, compiled = user_model("logistic")
    bands = RiskBands(low=0.4, high=0.7)
    search = search_of(compiled, bands)
    rows = elevated_rows(compiled, bands)
    for recs in search.search(rows, compiled.score(rows), k=5):
        assert recs is not None
        costs = [r.cost for r in recs]
        assert costs == sorted(costs)
        sets = [{name for name, _ in r.actions} for r in recs]
        for i, later in enumerate(sets):
            assert not any(earlier <= later for earlier in sets[:i])


def test_a_single_lever_answer_is_its_smallest_grid_step() -> None:
    _, compiled = user_model("logistic")
    bands = RiskBands(low=0.4, high=0.7)
    search = search_of(compiled, bands)
    rows = elevated_rows(compiled, bands)
    checked = 0
    for row, recs in zip(rows, search.search(rows, compiled.score(rows), k=5), strict=True):
        for rec in recs or []:
            if len(rec.actions) != 1:
                continue
            ((name, r),) = rec.actions
            i = [lever.name for lever in search.levers].index(name)
            smaller = np.zeros((1, len(search.levers)))
            smaller[0, i] = round(r - 0.1, 6)
            if smaller[0, i] <= 0:
                continue
            p = float(compiled.score(search.changed(row[None, :], smaller))[0])
            start = bands.band(float(compiled.score(row[None, :])[0]))
            assert RANK[bands.band(p)] >= RANK[start]  # one step less does not lower the band
            checked += 1
    assert checked >= 1


def test_low_rows_get_none_and_unreachable_rows_an_empty_list() -> None:
    _, compiled = user_model("logistic")
    search = search_of(compiled, RiskBands(low=0.4, high=0.7))
    frame, _ = user_frame(n=400, seed=9)
    values = frame[list(compiled.feature_names)].to_numpy()
    p = compiled.score(values)
    out = search.search(values, p)
    assert all(
        (recs is None) == (pb == LOW) for recs, pb in zip(out, search.bands.bands(p), strict=True)
    )
    # Edges no allowed change can cross: every row HIGH, nothing reaches below 0.0.
    stuck = search_of(compiled, RiskBands(low=0.0, high=0.0))
    assert stuck.search(values[:5], np.full(5, 0.5)) == [[], [], [], [], []]


def test_a_lever_with_nothing_to_change_is_not_offered() -> None:
    _, compiled = user_model("logistic")
    bands = RiskBands(low=0.4, high=0.7)
    search = search_of(compiled, bands)
    rows = elevated_rows(compiled, bands).copy()
    g = compiled.feature_names.index("gambling_tx_per_month")
    rows[:, g] = 0.0
    for recs in search.search(rows, compiled.score(rows), k=5):
        for rec in recs or []:
            assert "gamble_less" not in {name for name, _ in rec.actions}


def test_deterministic_and_bounded() -> None:
    _, compiled = user_model("hgb")
    bands = RiskBands(low=0.4, high=0.7)
    rows = elevated_rows(compiled, bands, n=10)
    calls: list[int] = []

    def counted(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return compiled.score(x)

    search = RecommendationSearch(counted, compiled.feature_names, bands)
    first = search.search(rows, compiled.score(rows))
    again = search_of(compiled, bands).search(rows, compiled.score(rows))
    assert [[r.to_dict() for r in recs or []] for recs in first] == [
        [r.to_dict() for r in recs or []] for recs in again
    ]
    assert search.evaluations == 400  # five levers: 31 alone + 369 in pairs
    assert len(calls) == len(rows) and max(calls) <= search.evaluations


def test_a_model_without_a_levers_feature_gets_only_the_others() -> None:
    model = trained_models.risk_model("hgb")
    compiled = compile_model(model)
    search = RecommendationSearch(compiled.score, compiled.feature_names, model.bands_)
    assert [lever.name for lever in search.levers] == ["spend_less", "keep_balance_buffer"]
    frame, _ = trained_models.risk_frame(n=200, seed=3)
    values = frame[list(compiled.feature_names)].to_numpy()
    p = compiled.score(values)
    out = search.search(values, p)
    found = [rec for recs in out for rec in recs or []]
    assert found
    for rec in found:
        assert isinstance(rec, Recommendation)
        assert {c.feature for c in rec.changes} <= {
            "total_expense",
            "expense_income_ratio",
            "max_expense",
            "low_balance_freq",
        }


def test_hostile_rows_give_finite_answers_or_none() -> None:
    """Values no history produces (a share of 5, negative counts, overflowing amounts): the
    search neither raises nor promises a non-finite probability, nor raises a negative habit."""
    _, compiled = user_model("logistic")
    bands = RiskBands(low=0.4, high=0.7)
    search = search_of(compiled, bands)
    rows = elevated_rows(compiled, bands, n=4).copy()
    names = compiled.feature_names
    rows[0, names.index("discretionary_share")] = 5.0
    rows[1, names.index("gambling_tx_per_month")] = -3.0
    rows[2, names.index("total_expense")] = 1e308
    rows[2, names.index("expense_per_month")] = -1e308
    rows[3, names.index("avg_expense")] = 0.0
    for recs in search.search(rows, np.full(len(rows), 0.9)):
        assert recs is not None
        for rec in recs:
            assert (
                np.isfinite(rec.probability) and np.isfinite([c.after for c in rec.changes]).all()
            )
            assert rec.band != HIGH
    (recs,) = search.search(rows[1:2], np.array([0.9]), k=5)
    assert all("gamble_less" not in dict(rec.actions) for rec in recs or [])
