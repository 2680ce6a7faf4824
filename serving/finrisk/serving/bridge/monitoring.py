"""Online monitoring: each served model version's live traffic, per window, against the
reference profile of its training data (finrisk.monitoring; docs/monitoring.md).

Every scored batch is counted into one window per model version that scored it (the version
comes with each answer). A window closes after `monitoring_window_transactions` transactions
or `monitoring_window_s` seconds, at the next batch (a quiet stream makes an empty one for it).
Closing it sets the Prometheus gauges and gives one monitoring record per model version, which
leaves with the batch that closed it: as durable as that batch's scored records (in
exactly-once mode, a transaction that aborts takes that window's records with it, and the
replayed batches count into the next window).

Profiles are fetched from the predictor that served the version, once per version; a version
without one (registered before profiles, or the predictor unreachable at that moment: asked
again for the next window) is still watched for its alert rate, bands and dead letters.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES
from finrisk.kinds import CHALLENGER, CHAMPION
from finrisk.models.bands import HIGH
from finrisk.monitoring.drift import level
from finrisk.monitoring.records import window_record
from finrisk.monitoring.window import LEVELS, ModelWindow, WindowReport
from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.messages import Transaction
from finrisk.serving.bridge.outputs import Score
from finrisk.serving.bridge.records import OutRecord
from finrisk.serving.bridge.v2_client import EndpointUnavailable, RequestRejected
from finrisk.settings import BridgeSettings

log = logging.getLogger("finrisk.bridge")


class _Verdict(NamedTuple):
    """Where a Score holds the detector's verdict in one role."""

    version: attrgetter[str | None]
    score: attrgetter[float | None]
    flag: attrgetter[bool | None]


_CHAMPION_VERDICT = _Verdict(
    attrgetter("detector_version"), attrgetter("anomaly_score"), attrgetter("is_anomaly")
)
_CHALLENGER_VERDICT = _Verdict(
    attrgetter("challenger_version"),
    attrgetter("challenger_score"),
    attrgetter("challenger_is_anomaly"),
)
# The most rows of a batch binned against the profile (see Monitor._count).
BINNED_ROWS = 256
# A profile the predictor could not give (unreachable) is asked for again after this long.
PROFILE_RETRY_S = 30.0

# (model, version, role) -> the version's profile from the predictor serving it in that role.
ProfileFetch = Callable[[str, str, str], dict[str, Any] | None]


class Profiles:
    """Reference profiles by (model, version, role), each fetched once."""

    def __init__(self, fetch: ProfileFetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._known: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        self._retry_at: dict[tuple[str, str, str], float] = {}

    def get(self, model: str, version: str, role: str = CHAMPION) -> dict[str, Any] | None:
        key = (model, version, role)
        if key in self._known:
            return self._known[key]
        if self._clock() < self._retry_at.get(key, 0.0):
            return None
        try:
            profile = self._fetch(model, version, role)
        except (EndpointUnavailable, RequestRejected) as exc:
            log.warning("no reference profile of %s %s for now: %s", model, version, exc)
            self._retry_at[key] = self._clock() + PROFILE_RETRY_S
            return None
        if profile is None:
            log.warning(
                "%s %s has no reference profile: its drift is not watched (alert rate, bands "
                "and dead letters still are)",
                model,
                version,
            )
        self._known[key] = profile
        return profile


class MonitoringGauges:
    """The last closed window's figures, per model version (docs/monitoring.md lists them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["model", "version", "role"]
        r = registry
        self.feature_psi = Gauge(
            "finrisk_monitoring_feature_psi",
            "PSI of a feature against the model version's training profile, last window",
            [*labels, "feature"],
            registry=r,
        )
        self.score_psi = Gauge(
            "finrisk_monitoring_score_psi",
            "PSI of the model's scores against its held-out scores, last window",
            labels,
            registry=r,
        )
        self.category_psi = Gauge(
            "finrisk_monitoring_category_psi",
            "Largest PSI of a category column (category, channel), last window",
            labels,
            registry=r,
        )
        self.alert_rate = Gauge(
            "finrisk_monitoring_alert_rate",
            "Share of transactions alerted on (risk model: rated HIGH), last window",
            labels,
            registry=r,
        )
        self.reference_alert_rate = Gauge(
            "finrisk_monitoring_reference_alert_rate",
            "The same share on the model version's held-out data",
            labels,
            registry=r,
        )
        self.band_share = Gauge(
            "finrisk_monitoring_band_share",
            "Share of transactions whose user is in each risk band, last window",
            [*labels, "band"],
            registry=r,
        )
        self.missing_rate = Gauge(
            "finrisk_monitoring_missing_rate",
            "Share of the model's feature values missing or not finite, last window",
            labels,
            registry=r,
        )
        self.drift_level = Gauge(
            "finrisk_monitoring_drift_level",
            "Worst drift level of the last window: 0 stable, 1 moderate, 2 major",
            labels,
            registry=r,
        )
        self.dead_letter_rate = Gauge(
            "finrisk_monitoring_dead_letter_rate",
            "Share of input messages dead-lettered, last window",
            registry=r,
        )
        self.windows = Counter(
            "finrisk_monitoring_windows",
            "Monitoring windows closed, by drift level",
            [*labels, "level"],
            registry=r,
        )
        # What each model version shown has set: its features and bands.
        self._shown: dict[tuple[str, str, str], tuple[list[str], list[str]]] = {}

    def show(self, reports: Sequence[WindowReport], dead_letter_rate: float) -> None:
        """Set the gauges to these windows; versions no longer scoring leave the gauges."""
        self.dead_letter_rate.set(dead_letter_rate)
        shown = {(r.model, r.model_version, r.role): r for r in reports}
        for key in set(self._shown) - set(shown):
            features, bands = self._shown.pop(key)
            for feature in features:
                self.feature_psi.remove(*key, feature)
            for band in bands:
                self.band_share.remove(*key, band)
            for gauge in self._per_version():
                gauge.remove(*key)
        for key, report in shown.items():
            features, bands = self._shown.setdefault(key, ([], []))
            for feature, psi in report.feature_psi.items():
                _set(self.feature_psi.labels(*key, feature), psi)
                if feature not in features:
                    features.append(feature)
            for band, share in (report.band_mix or {}).items():
                self.band_share.labels(*key, band).set(share)
                if band not in bands:
                    bands.append(band)
            _set(self.score_psi.labels(*key), report.score_psi)
            _set(self.category_psi.labels(*key), report.category_psi)
            _set(self.alert_rate.labels(*key), report.alert_rate)
            _set(self.reference_alert_rate.labels(*key), report.reference_alert_rate)
            self.missing_rate.labels(*key).set(report.missing_rate)
            self.drift_level.labels(*key).set(LEVELS.index(report.drift_level))
            self.windows.labels(*key, report.drift_level).inc()

    def _per_version(self) -> tuple[Gauge, ...]:
        return (
            self.score_psi,
            self.category_psi,
            self.alert_rate,
            self.reference_alert_rate,
            self.missing_rate,
            self.drift_level,
        )


def _set(gauge: Gauge, value: float | None) -> None:
    gauge.set(float("nan") if value is None else value)


class Monitor:
    """The open windows of one bridge, and the records of those it closes."""

    def __init__(
        self,
        config: BridgeSettings,
        profiles: Profiles,
        gauges: MonitoringGauges,
        *,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic = config.monitoring_topic
        self.detector_model = config.detector_model
        self.risk_model = config.risk_model or None
        self.max_transactions = config.monitoring_window_transactions
        self.max_seconds = config.monitoring_window_s
        self.profiles = profiles
        self.gauges = gauges
        # The pod's name in Kubernetes; the process tells workers on one host apart.
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self._clock = clock
        self._windows: dict[tuple[str, str, str], ModelWindow] = {}
        self._open()

    def _open(self) -> None:
        self._windows.clear()
        self._started_ms = int(self._clock() * 1000)
        self.transactions = 0
        self.messages = 0
        self.dead_lettered = 0

    def _window(self, role: str, model: str, version: str, columns: Sequence[str]) -> ModelWindow:
        key = (role, model, version)
        window = self._windows.get(key)
        if window is None:
            profile = self.profiles.get(model, version, role) or {}
            window = self._windows[key] = ModelWindow(model, version, role, profile, columns)
        return window

    def observe(self, batch: Batch) -> list[OutRecord]:
        """Count a scored batch; the monitoring records of the windows it closes, if it does."""
        scores = batch.scores
        assert scores is not None
        n = len(scores)
        self.transactions += n
        self.messages += n + len(batch.dead)
        self.dead_lettered += len(batch.dead)
        if n:
            self._count(batch, scores)
        now = self._clock()
        if self.transactions >= self.max_transactions or self._timed_out(now):
            return self.close(now)
        return []

    def _timed_out(self, now: float) -> bool:
        return now * 1000 - self._started_ms >= self.max_seconds * 1000

    def due(self) -> bool:
        """Whether a window with something in it has outlived its time: a quiet stream closes
        it with an empty batch, rather than keep its last transactions out of sight."""
        return self.messages > 0 and self._timed_out(self._clock())

    def _count(self, batch: Batch, scores: Sequence[Score]) -> None:
        # Alerts and bands are counted on every row; the values binned against the profile on
        # every `step`-th (at most BINNED_ROWS a batch): a window's PSI stands on thousands of
        # rows either way, and binning every row of a busy stream cost ~5% of its throughput.
        step = -(-len(scores) // BINNED_ROWS)
        txs = [tx for _, tx in batch.rows]
        self._count_detector(batch, scores, txs, step, CHAMPION, _CHAMPION_VERDICT)
        # The shadow challenger's rows (those it answered for) in windows of its own.
        self._count_detector(batch, scores, txs, step, CHALLENGER, _CHALLENGER_VERDICT)
        if self.risk_model is None:
            return
        for version, rows in _by_version([s.risk_model_version for s in scores]):
            window = self._window(CHAMPION, self.risk_model, version, USER_FEATURES)
            bands = [scores[i].risk_band for i in rows]
            binned = rows[::step]
            window.add(
                batch.user_matrix[binned],
                np.array([_nan(scores[i].risk_probability) for i in binned], dtype=np.float64),
                transactions=len(rows),
                alerts=bands.count(HIGH),
                bands=bands,
                event_ns=np.array([txs[i].event_ns for i in binned], dtype=np.int64),
            )

    def _count_detector(
        self,
        batch: Batch,
        scores: Sequence[Score],
        txs: Sequence[Transaction],
        step: int,
        role: str,
        verdict: _Verdict,
    ) -> None:
        """The detector's rows in the windows of the versions that scored them in `role`."""
        for version, rows in _by_version(list(map(verdict.version, scores))):
            window = self._window(role, self.detector_model, version, TRANSACTION_FEATURES)
            binned = rows[::step]
            window.add(
                # Merchant risk, when served, follows TRANSACTION_FEATURES: not profiled.
                batch.tx_matrix[binned, : len(TRANSACTION_FEATURES)],
                np.array([verdict.score(scores[i]) for i in binned], dtype=np.float64),
                transactions=len(rows),
                alerts=sum(1 for i in rows if verdict.flag(scores[i])),
                categories={
                    name: [txs[i].fields[name] for i in binned] for name in window.categories
                },
                event_ns=np.array([txs[i].event_ns for i in binned], dtype=np.int64),
            )

    def close(self, now: float | None = None) -> list[OutRecord]:
        """Close the open windows: set the gauges, and return their monitoring records."""
        ended_ms = int((self._clock() if now is None else now) * 1000)
        reports = [w.report() for w in self._windows.values() if w.transactions]
        rate = self.dead_lettered / self.messages if self.messages else 0.0
        self.gauges.show(reports, rate)
        out: list[OutRecord] = []
        for report in reports:
            record = window_record(
                report,
                instance=self.instance,
                started_ms=self._started_ms,
                ended_ms=ended_ms,
                dead_lettered=self.dead_lettered,
                messages=self.messages,
            )
            if report.drift_level != "stable":
                log.warning(
                    "%s drift of %s %s (%s): %s",
                    report.drift_level,
                    report.model,
                    report.model_version,
                    report.role,
                    ", ".join(report.drifted_features) or _worst(report),
                )
            out.append((self.topic, report.model.encode(), orjson.dumps(record), None, None))
        self._open()
        return out


def _worst(report: WindowReport) -> str:
    parts = [f"score PSI {report.score_psi:.3f}"] if report.score_psi is not None else []
    if report.category_psi is not None and level(report.category_psi) != "stable":
        parts.append(f"category PSI {report.category_psi:.3f}")
    if report.max_feature_psi is not None:
        parts.append(f"max feature PSI {report.max_feature_psi:.3f}")
    return ", ".join(parts)


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def _by_version(versions: list[str | None]) -> list[tuple[str, npt.NDArray[np.intp]]]:
    """The batch's rows (indices) per model version: one version scored them all in the usual
    case (one call per batch); rows without a version (no risk model, no challenger answer)
    belong to none."""
    first = versions[0]
    if versions.count(first) == len(versions):
        return [] if first is None else [(first, np.arange(len(versions)))]
    rows: dict[str, list[int]] = {}
    for i, version in enumerate(versions):
        if version is not None:
            rows.setdefault(version, []).append(i)
    return [(version, np.array(indices, dtype=np.intp)) for version, indices in rows.items()]
