"""Recommendations: the smallest changes of behaviour a user controls that lower their risk band.

A counterfactual search against a risk model's score function (the served, compiled model:
`CompiledModel.score`), over LEVERS: behaviours a user can change, each reducing one habit by
a fraction (its `reduction`, 0 to the lever's `max_reduction`) and moving every user feature
that habit feeds, so the changed row stays one the feature formulas
(finrisk.features.formulas) could have produced:

- spend_less (<= 30%): every debit smaller by the fraction. total_expense, avg_expense,
  max_expense, top_category_spend, expense_per_month, expense_income_ratio and
  recent_expense_income_ratio scale by (1 - r); net_flow_per_month rises by what
  expense_per_month falls; shares and expense_cv are ratios of expenses and do not move.
- cut_discretionary (<= 50%): discretionary spend smaller by the fraction, the rest the same.
  Expenses fall by r * discretionary_share of themselves, so the expense features above (not
  max_expense or top_category_spend: the largest debit or category may be essential) scale by
  (1 - r * discretionary_share), discretionary_share becomes d(1 - r) / (1 - r d) and the
  essential and cash-out shares grow by 1 / (1 - r d).
- gamble_less (<= 100%: stopping is plausible): a fraction of the gambling debits not made.
  gambling_tx_per_month scales by (1 - r); those debits leave the distress debits too:
  distress_share = (n_distress - r n_gambling) / (n_debits - r n_gambling), with n_gambling =
  gambling_tx_per_month * months (months from active_days, as the formulas count them) and
  n_debits = total_expense / avg_expense, and recent_distress_share scales by the same
  ratio. The bets' amounts are unknown to the features, so the expense features stay.
- avoid_overdrafts (<= 80%): overdraft_freq and recent_overdraft_share scale by (1 - r).
- keep_balance_buffer (<= 50%): low_balance_freq and recent_low_balance_share scale by
  (1 - r), never below the overdraft shares (an overdrawn balance is a low one).

Everything else (income, counts, history length, balances, categories counts) stays: those
are circumstances or consequences, not a habit to change. A lever whose features the model
does not read, or that changes nothing for a row (no gambling to cut), is not offered.

"Smallest": a change's cost is the sum of its levers' reductions (cutting gambling by 50% and
overdrafts by 20% costs 0.7): unit-free, in the terms a recommendation is given in, and the
same for every model (a spread-based cost would make a lever cheap where the population
varies, which says nothing about the user's effort). The search scores a fixed grid, every
lever alone and every pair of levers, at reductions of STEP up to each lever's bound
(`evaluations` rows per elevated user, 400 with all five levers), in one call of the score
function per user. A lever set's answer is its cheapest grid point reaching a lower band
(HIGH -> MEDIUM or LOW, MEDIUM -> LOW); answers are ranked by cost, then fewer levers, then
lever order, and one whose levers include a cheaper answer's levers is dropped. LOW rows get
no search (None); an elevated row no allowed change brings down gets an empty list.
Deterministic: no sampling, a fixed grid, total ordering of ties.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from finrisk.errors import FinriskError
from finrisk.features.definitions import DAYS_PER_MONTH, MIN_MONTHS
from finrisk.models.bands import BAND_NAMES, LOW, RiskBands

Matrix = npt.NDArray[np.float64]
ScoreFn = Callable[[Matrix], npt.NDArray[np.float64]]
Columns = Mapping[str, int]

# Grid resolution of the reductions: advice reads "by 10%", "by 20%", not "by 13.7%".
STEP = 0.1
# Levers combined at most: a third lever would multiply the grid by up to ten.
MAX_LEVERS = 2
DEFAULT_RECOMMENDATIONS = 3
MAX_RECOMMENDATIONS = 5
# Decimals of reductions and costs: the grid's sums in float carry noise (0.1 + 0.2).
_DECIMALS = 6
_BAND_RANK = {name: rank for rank, name in enumerate(BAND_NAMES)}

EXPENSE_FEATURES = (
    "total_expense",
    "avg_expense",
    "expense_per_month",
    "expense_income_ratio",
    "recent_expense_income_ratio",
)


def _scale(x: Matrix, cols: Columns, names: Sequence[str], factor: Matrix) -> None:
    for name in names:
        if name in cols:
            x[:, cols[name]] *= factor


def _expenses_scaled(x: Matrix, cols: Columns, factor: Matrix, also: Sequence[str] = ()) -> None:
    """Expense features times factor; net flow up by what the monthly expense went down."""
    if "net_flow_per_month" in cols and "expense_per_month" in cols:
        x[:, cols["net_flow_per_month"]] += x[:, cols["expense_per_month"]] * (1.0 - factor)
    _scale(x, cols, (*EXPENSE_FEATURES, *also), factor)


def _spend_less(x: Matrix, cols: Columns, r: Matrix) -> None:
    _expenses_scaled(x, cols, 1.0 - r, also=("max_expense", "top_category_spend"))


def _cut_discretionary(x: Matrix, cols: Columns, r: Matrix) -> None:
    # A share is within [0, 1] from the formulas; clipped so that a hostile row cannot make
    # the expenses left zero or negative.
    d = np.clip(x[:, cols["discretionary_share"]], 0.0, 1.0)
    kept = 1.0 - r * d  # what is left of all expenses (r <= 0.5: at least half)
    _expenses_scaled(x, cols, kept)
    x[:, cols["discretionary_share"]] = d * (1.0 - r) / kept
    for name in ("essential_share", "cash_out_share"):
        if name in cols:
            x[:, cols[name]] = np.minimum(x[:, cols[name]] / kept, 1.0)


def _gamble_less(x: Matrix, cols: Columns, r: Matrix) -> None:
    g = cols["gambling_tx_per_month"]
    needed = ("distress_share", "active_days", "total_expense", "avg_expense")
    if all(name in cols for name in needed):
        months = np.maximum(x[:, cols["active_days"]] / DAYS_PER_MONTH, MIN_MONTHS)
        avg = x[:, cols["avg_expense"]]
        n_debits = np.where(avg > 0, x[:, cols["total_expense"]] / np.where(avg > 0, avg, 1), 0)
        share = x[:, cols["distress_share"]]
        n_distress = share * n_debits
        n_gambling = np.minimum(x[:, g] * months, n_distress)  # gambling debits are distress ones
        removed = r * n_gambling
        new_share = np.where(
            n_debits - removed >= 1.0,
            (n_distress - removed) / np.maximum(n_debits - removed, 1.0),
            share,
        )
        new_share = np.clip(new_share, 0.0, share)
        if "recent_distress_share" in cols:
            ratio = np.where(share > 0, new_share / np.where(share > 0, share, 1.0), 1.0)
            x[:, cols["recent_distress_share"]] *= ratio
        x[:, cols["distress_share"]] = new_share
    x[:, g] *= 1.0 - r


def _avoid_overdrafts(x: Matrix, cols: Columns, r: Matrix) -> None:
    _scale(x, cols, ("overdraft_freq", "recent_overdraft_share"), 1.0 - r)


def _keep_balance_buffer(x: Matrix, cols: Columns, r: Matrix) -> None:
    for low, over in (
        ("low_balance_freq", "overdraft_freq"),
        ("recent_low_balance_share", "recent_overdraft_share"),
    ):
        if low in cols:
            before = x[:, cols[low]]
            # Never below the overdraft share, and never above where it was.
            floor = np.minimum(x[:, cols[over]], before) if over in cols else 0.0
            x[:, cols[low]] = np.maximum(before * (1.0 - r), floor)


@dataclass(frozen=True)
class Lever:
    """A habit the user controls: reduced by a fraction up to max_reduction."""

    name: str
    driver: str  # the feature the model must read for the lever to be offered
    moves: tuple[str, ...]  # every feature it can change (documentation and tests)
    max_reduction: float
    apply: Callable[[Matrix, Columns, Matrix], None]  # in place, reductions per row

    @property
    def steps(self) -> npt.NDArray[np.float64]:
        n = round(self.max_reduction / STEP)
        return np.round(np.arange(1, n + 1) * STEP, _DECIMALS)


# In the order they are applied (and ties are broken): spending before the balances it feeds.
LEVERS: tuple[Lever, ...] = (
    Lever(
        "spend_less",
        "expense_income_ratio",
        (*EXPENSE_FEATURES, "max_expense", "top_category_spend", "net_flow_per_month"),
        0.3,
        _spend_less,
    ),
    Lever(
        "cut_discretionary",
        "discretionary_share",
        (
            *EXPENSE_FEATURES,
            "net_flow_per_month",
            "discretionary_share",
            "essential_share",
            "cash_out_share",
        ),
        0.5,
        _cut_discretionary,
    ),
    Lever(
        "gamble_less",
        "gambling_tx_per_month",
        ("gambling_tx_per_month", "distress_share", "recent_distress_share"),
        1.0,
        _gamble_less,
    ),
    Lever(
        "avoid_overdrafts",
        "overdraft_freq",
        ("overdraft_freq", "recent_overdraft_share"),
        0.8,
        _avoid_overdrafts,
    ),
    Lever(
        "keep_balance_buffer",
        "low_balance_freq",
        ("low_balance_freq", "recent_low_balance_share"),
        0.5,
        _keep_balance_buffer,
    ),
)


@dataclass(frozen=True)
class Change:
    feature: str
    before: float
    after: float

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "from": self.before, "to": self.after}


@dataclass(frozen=True)
class Recommendation:
    """Levers and their reductions, the feature values they lead to, and the model's answer."""

    actions: tuple[tuple[str, float], ...]  # (lever, reduction) in lever order
    changes: tuple[Change, ...]  # every feature that moves, in the model's feature order
    cost: float
    probability: float
    band: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [{"lever": name, "reduce_by": r} for name, r in self.actions],
            "changes": [change.to_dict() for change in self.changes],
            "cost": self.cost,
            "probability": self.probability,
            "band": self.band,
        }


class RecommendationSearch:
    """The grid search for one model: its score function, feature order and band edges."""

    def __init__(self, score: ScoreFn, feature_names: Sequence[str], bands: RiskBands) -> None:
        self.score = score
        self.feature_names = tuple(feature_names)
        self.bands = bands
        self.columns: dict[str, int] = {name: j for j, name in enumerate(self.feature_names)}
        self.levers = tuple(lever for lever in LEVERS if lever.driver in self.columns)
        self._grid, self._sets = self._build_grid()

    def _build_grid(self) -> tuple[Matrix, list[tuple[int, ...]]]:
        """(rows, levers) reductions: each lever alone, then each pair, ascending steps; and
        the lever set of each row (indices into self.levers)."""
        blocks: list[Matrix] = []
        sets: list[tuple[int, ...]] = []
        n = len(self.levers)
        for size in range(1, MAX_LEVERS + 1):
            for chosen in combinations(range(n), size):
                axes = np.meshgrid(*(self.levers[i].steps for i in chosen), indexing="ij")
                block = np.zeros((axes[0].size, n))
                for i, axis in zip(chosen, axes, strict=True):
                    block[:, i] = axis.ravel()
                blocks.append(block)
                sets.extend([chosen] * len(block))
        grid = np.vstack(blocks) if blocks else np.zeros((0, n))
        return grid, sets

    @property
    def evaluations(self) -> int:
        """Model evaluations (scored rows) per elevated row, at most: the grid's size."""
        return len(self._grid)

    def changed(self, values: Matrix, reductions: Matrix) -> Matrix:
        """values (one row, or one per reduction row) with the levers applied."""
        x = np.array(np.broadcast_to(values, (len(reductions), len(self.feature_names))))
        for i, lever in enumerate(self.levers):
            # Only the rows the lever acts on: a zero reduction must leave a row bit for bit.
            rows = np.flatnonzero(reductions[:, i] > 0)
            if len(rows):
                part = x[rows]
                lever.apply(part, self.columns, reductions[rows, i])
                x[rows] = part
        return x

    def for_row(
        self, row: Matrix, band: str, k: int = DEFAULT_RECOMMENDATIONS
    ) -> list[Recommendation]:
        """Up to k recommendations for one elevated row (band MEDIUM or HIGH)."""
        if not 1 <= k <= MAX_RECOMMENDATIONS:
            raise FinriskError(
                f"recommendations per row must be 1 to {MAX_RECOMMENDATIONS}, got {k}"
            )
        rank = _BAND_RANK[band]
        if rank == 0 or not len(self._grid):
            return []
        # Levers with nothing to reduce (no gambling to cut; a negative value no real history
        # has) or that change nothing here are not offered.
        useful = [
            bool(row[0, self.columns[lever.driver]] > 0)
            and bool(np.any(self.changed(row, self._only(i)) != row))
            for i, lever in enumerate(self.levers)
        ]
        keep = np.array([all(useful[i] for i in chosen) for chosen in self._sets], dtype=bool)
        grid = self._grid[keep]
        sets = [s for s, kept in zip(self._sets, keep, strict=True) if kept]
        if not len(grid):
            return []
        with np.errstate(all="ignore"):  # a hostile row may overflow: those rows are dropped
            candidates = self.changed(row, grid)
        finite = np.flatnonzero(np.isfinite(candidates).all(axis=1))
        probabilities = np.full(len(grid), np.nan)
        if len(finite):
            probabilities[finite] = self.score(candidates[finite])
        scored = np.isfinite(probabilities)
        lower = scored & ~self.bands.at_least(np.where(scored, probabilities, 1.0), band)
        costs = np.round(grid.sum(axis=1), _DECIMALS)
        best: dict[tuple[int, ...], int] = {}
        for found in np.flatnonzero(lower).tolist():  # grid order: ascending steps in a set
            chosen = sets[found]
            if chosen not in best or costs[found] < costs[best[chosen]]:
                best[chosen] = found
        ranked = sorted(best.items(), key=lambda item: (costs[item[1]], len(item[0]), item[0]))
        picked: list[tuple[int, ...]] = []
        out: list[Recommendation] = []
        for chosen, g in ranked:
            if any(set(p) <= set(chosen) for p in picked):
                continue  # a cheaper answer needs only some of these levers
            picked.append(chosen)
            p = float(probabilities[g])
            out.append(self._recommendation(row, candidates[g], grid[g], costs[g], p))
            if len(out) == k:
                break
        return out

    def search(
        self,
        values: Matrix,
        probabilities: npt.NDArray[np.float64],
        k: int = DEFAULT_RECOMMENDATIONS,
    ) -> list[list[Recommendation] | None]:
        """Per row: None for LOW rows (no search), else up to k recommendations ([] when no
        allowed change lowers the band). `probabilities` are the model's scores of `values`."""
        bands = self.bands.bands(probabilities)
        return [
            None if band == LOW else self.for_row(values[i : i + 1], str(band), k)
            for i, band in enumerate(bands)
        ]

    def _only(self, i: int) -> Matrix:
        reductions = np.zeros((1, len(self.levers)))
        reductions[0, i] = self.levers[i].max_reduction
        return reductions

    def _recommendation(
        self,
        row: Matrix,
        after: Matrix,
        reductions: Matrix,
        cost: float,
        probability: float,
    ) -> Recommendation:
        before = row[0]
        return Recommendation(
            actions=tuple(
                (lever.name, float(r))
                for lever, r in zip(self.levers, reductions, strict=True)
                if r > 0
            ),
            changes=tuple(
                Change(name, float(before[j]), float(after[j]))
                for j, name in enumerate(self.feature_names)
                if after[j] != before[j]
            ),
            cost=float(cost),
            probability=probability,
            band=self.bands.band(probability),
        )
