"""One monitoring window of one served model version: its live inputs and outputs counted in
the bins of the version's reference profile, and the window's report.

The streaming bridge keeps one `ModelWindow` per model version it sees (the champion's, and the
shadow challenger's) and hands it every scored batch; `report()` turns the counts into the
window's drift statistics (finrisk.monitoring.drift). Counting is numpy per batch column
(searchsorted and bincount), so watching a stream costs well under a microsecond a transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

import numpy as np
import numpy.typing as npt

from finrisk.features.definitions import CLOCK_FEATURES
from finrisk.monitoring.calendar import phases
from finrisk.monitoring.drift import category_counts_psi, level, shares_psi

# The drift levels, in order of severity (finrisk.monitoring.drift.level).
LEVELS = ("stable", "moderate", "major")


@dataclass
class _Bins:
    """Live counts in the bins of one numeric reference (`profile.numeric`), per calendar phase
    when the profile has them: `reference` holds a row of shares per phase, then the overall
    shares (the last row, for rows of no known phase), and `counts` a row of counts for each."""

    edges: npt.NDArray[np.float64]
    reference: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64] = field(init=False)
    missing: int = 0

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.reference.shape, dtype=np.int64)

    @classmethod
    def of(
        cls, reference: Mapping[str, Any], phased: Sequence[Sequence[float] | None] = ()
    ) -> _Bins | None:
        shares = np.asarray(reference.get("shares") or (), dtype=np.float64)
        if len(shares) == 0:
            return None  # never seen a finite value in training: nothing to compare with
        # A phase without shares of its own (too few training rows) is compared with the overall.
        rows = [shares if s is None else np.asarray(s, dtype=np.float64) for s in phased]
        return cls(np.asarray(reference["edges"], dtype=np.float64), np.vstack([*rows, shares]))

    def add(self, values: npt.NDArray[np.float64], phase: npt.NDArray[np.intp] | None) -> None:
        """Count `values`, each in its phase's row (`phase`; None: unknown, the last row)."""
        finite = np.isfinite(values)
        if not finite.all():
            values = values[finite]
            phase = None if phase is None else phase[finite]
            self.missing += len(finite) - len(values)
        bins = np.searchsorted(self.edges, values, side="left")
        n_phases, width = self.counts.shape
        if phase is None or n_phases == 1:
            self.counts[-1] += np.bincount(bins, minlength=width)
            return
        flat = np.bincount(phase * width + bins, minlength=self.counts.size)
        self.counts += flat.reshape(self.counts.shape)

    def psi(self) -> float | None:
        total = int(self.counts.sum())
        if total == 0:
            return None
        if len(self.counts) == 1:
            return shares_psi(self.reference[0], self.counts[0] / total)
        # The reference mixed in the window's own proportions of the phases: a window of the
        # 1st to the 5th is compared with the training's 1st to 5th.
        weights = self.counts.sum(axis=1) / total
        return shares_psi(weights @ self.reference, self.counts.sum(axis=0) / total)


def _category_psi(
    references: Sequence[Mapping[str, float]], counts: Sequence[Counter[str]]
) -> float:
    """The PSI of live categories counted per phase (`counts[phase]`) against the references of
    each phase (the last: the overall shares) mixed in the window's proportions of the phases."""
    by_phase = [sum(counter.values()) for counter in counts]
    total = sum(by_phase)
    by_value: Counter[str] = Counter()
    for counter in counts:
        by_value.update(counter)
    if max(by_phase) == total:  # one phase: its reference as it is
        return category_counts_psi(references[by_phase.index(total)], by_value)
    mixed: dict[str, float] = {}
    for reference, count in zip(references, by_phase, strict=True):
        for name, share in reference.items():
            mixed[name] = mixed.get(name, 0.0) + share * count / total
    return category_counts_psi(mixed, by_value)


@dataclass(frozen=True)
class WindowReport:
    """A closed window of one model version: what `finrisk.monitoring.records` publishes."""

    model: str
    model_version: str
    role: str
    transactions: int
    # How many of them were binned against the profile (the bridge bins a sample of busy
    # batches); the event times are those rows'.
    binned: int
    event_ns_min: int | None
    event_ns_max: int | None
    # Each profiled feature's PSI (None: no finite live value in the window).
    feature_psi: dict[str, float | None]
    category_psi: float | None
    score_psi: float | None
    missing_rate: float
    alert_rate: float | None
    reference_alert_rate: float | None
    band_mix: dict[str, float] | None
    reference_band_mix: dict[str, float] | None

    @property
    def judged_psi(self) -> dict[str, float | None]:
        """The PSIs a window's drift is judged on: not those of the clock's features
        (finrisk.features.definitions.CLOCK_FEATURES), whose shift within a window is the time
        of day, the weekday or the age of the histories, whatever the data does."""
        return {k: v for k, v in self.feature_psi.items() if k not in CLOCK_FEATURES}

    @property
    def max_feature_psi(self) -> float | None:
        known = [v for v in self.judged_psi.values() if v is not None]
        return max(known) if known else None

    @property
    def drifted_features(self) -> list[str]:
        """The judged features whose shift is major, largest first."""
        major = [(v, k) for k, v in self.judged_psi.items() if level(v) == "major"]
        return [name for _, name in sorted(major, key=lambda item: (-(item[0] or 0.0), item[1]))]

    @property
    def drift_level(self) -> str:
        """The worst level of the feature, category and score PSIs (`stable` when none is
        known: a window too small to say is not an alarm)."""
        levels = [level(v) for v in (self.max_feature_psi, self.category_psi, self.score_psi)]
        return max((x for x in levels if x in LEVELS), key=LEVELS.index, default="stable")


class ModelWindow:
    """Counts of one model version's live traffic over one window, on its reference profile.

    `columns` names the columns of the matrices `add` is given; profiled features not among them
    are not watched (a profile from a model that takes features this bridge does not compute).
    """

    def __init__(
        self,
        model: str,
        version: str,
        role: str,
        profile: Mapping[str, Any],
        columns: Sequence[str],
    ) -> None:
        self.model = model
        self.version = version
        self.role = role
        self.profile = profile
        index = {name: i for i, name in enumerate(columns)}
        # The calendar phases (finrisk.monitoring.profile, version 2): each measure's scheme,
        # None for a profile without them (every row then counts against the overall shares).
        calendar = profile.get("calendar") or {}
        phased = {part: calendar.get(part) or {} for part in ("features", "categories", "scores")}
        self._phases = {part: given.get("phases") for part, given in phased.items()}
        self._schemes = sorted({scheme for scheme in self._phases.values() if scheme is not None})
        self._features: dict[str, tuple[int, _Bins]] = {}
        for name, reference in (profile.get("features") or {}).items():
            bins = _Bins.of(reference, (phased["features"].get("shares") or {}).get(name, ()))
            if bins is not None and name in index:
                self._features[name] = (index[name], bins)
        # Per category column: the reference shares of each phase, then the overall ones; live
        # values counted per phase, those of rows of unknown time in the last.
        self._category_references: dict[str, list[Mapping[str, float]]] = {}
        for name, overall in (profile.get("categories") or {}).items():
            per_phase = (phased["categories"].get("shares") or {}).get(name, ())
            self._category_references[name] = [
                *(overall if shares is None else shares for shares in per_phase),
                overall,
            ]
        self._categories: dict[str, list[Counter[str]]] = {
            name: [Counter() for _ in references]
            for name, references in self._category_references.items()
        }
        self._scores = _Bins.of(profile.get("scores") or {}, phased["scores"].get("shares") or ())
        self._watch_bands = profile.get("band_mix") is not None
        self.reset()

    def reset(self) -> None:
        self.transactions = 0
        self.binned = 0
        self.alerts = 0
        self.bands: Counter[str] = Counter()
        self.event_ns_min: int | None = None
        self.event_ns_max: int | None = None
        for _, bins in self._features.values():
            bins.counts[:] = 0
            bins.missing = 0
        for counters in self._categories.values():
            for counter in counters:
                counter.clear()
        if self._scores is not None:
            self._scores.counts[:] = 0
            self._scores.missing = 0

    @property
    def categories(self) -> tuple[str, ...]:
        """The category columns the profile holds shares of (the detector's)."""
        return tuple(self._categories)

    def add(
        self,
        matrix: npt.NDArray[np.float64],
        scores: npt.NDArray[np.float64],
        *,
        transactions: int | None = None,
        alerts: int,
        bands: Iterable[str | None] = (),
        categories: Mapping[str, Iterable[str]] | None = None,
        event_ns: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """One batch's rows of this model version: its feature matrix (a row per transaction,
        `columns` order), the model's scores, the category columns' values and the event times
        of the rows binned, which may be a sample of `transactions` rows (default: all of
        them); how many of those it alerted on, and their risk bands."""
        n = len(matrix) if transactions is None else transactions
        if n == 0:
            return
        self.transactions += n
        self.binned += len(matrix)
        self.alerts += alerts
        # Each row's phase in each scheme the profile uses (one computation a scheme); none
        # without a calendar or the rows' times.
        timed = event_ns is not None and len(event_ns) == len(matrix)
        by_scheme = {
            scheme: phases(scheme, event_ns)
            for scheme in self._schemes
            if timed and event_ns is not None
        }
        row_phase = by_scheme.get(self._phases["features"] or "")
        for column, bins in self._features.values():
            bins.add(matrix[:, column], row_phase)
        if self._scores is not None:
            self._scores.add(scores, by_scheme.get(self._phases["scores"] or ""))
        if self._watch_bands:
            self.bands.update(band for band in bands if band is not None)
        if categories is not None and self._categories:
            self._count_categories(categories, by_scheme.get(self._phases["categories"] or ""))
        if event_ns is not None and len(event_ns):
            low, high = int(event_ns.min()), int(event_ns.max())
            self.event_ns_min = low if self.event_ns_min is None else min(self.event_ns_min, low)
            self.event_ns_max = high if self.event_ns_max is None else max(self.event_ns_max, high)

    def _count_categories(
        self, categories: Mapping[str, Iterable[str]], phase: npt.NDArray[np.intp] | None
    ) -> None:
        """Each category column's values counted in their phase's counter. A batch is a few
        seconds of a stream, so nearly always of one phase: counted whole, as without phases."""
        split: list[tuple[int, list[bool] | None]]
        if phase is None:
            split = [(-1, None)]
        elif len(phase) and phase.min() == phase.max():
            split = [(int(phase[0]), None)]
        else:
            split = [(int(p), (phase == p).tolist()) for p in np.unique(phase)]
        for name, counters in self._categories.items():
            if name not in categories:
                continue
            values = categories[name]
            for p, mask in split:
                counters[p].update(values if mask is None else compress(values, mask))

    def report(self) -> WindowReport:
        n = self.transactions
        profile = self.profile
        checked = sum(int(b.counts.sum()) + b.missing for _, b in self._features.values())
        missing = sum(b.missing for _, b in self._features.values())
        category_psis = [
            _category_psi(self._category_references[name], counter)
            for name, counter in self._categories.items()
            if any(counter)
        ]
        band_mix = None
        if self._watch_bands and self.bands:
            total = sum(self.bands.values())
            band_mix = {band: count / total for band, count in sorted(self.bands.items())}
        reference_alert_rate = profile.get("alert_rate")
        return WindowReport(
            model=self.model,
            model_version=self.version,
            role=self.role,
            transactions=n,
            binned=self.binned,
            event_ns_min=self.event_ns_min,
            event_ns_max=self.event_ns_max,
            feature_psi={name: bins.psi() for name, (_, bins) in self._features.items()},
            category_psi=max(category_psis) if category_psis else None,
            score_psi=None if self._scores is None else self._scores.psi(),
            missing_rate=missing / checked if checked else 0.0,
            alert_rate=self.alerts / n if n else None,
            reference_alert_rate=None if reference_alert_rate is None else reference_alert_rate,
            band_mix=band_mix,
            reference_band_mix=profile.get("band_mix"),
        )
