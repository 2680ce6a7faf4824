"""What the demo reports, computed from the scored topic and the injected labels alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from finrisk.models.bands import BAND_NAMES


@dataclass(frozen=True)
class StreamSummary:
    transactions_produced: int
    scored: int
    missing: int
    duplicates: int
    flagged: int
    true_fraud: int
    true_positives: int
    precision: float | None
    recall: float | None
    users: int
    # The latest band of each user, counted.
    risk_bands: dict[str, int]
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    # Scored transactions per second between the first and the last score (as `finrisk bench
    # bridge` measures it): the bridge's pace, without its start-up and group join.
    scoring_rate_per_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DemoSummary:
    run_id: str
    scored_topic: str
    stream: StreamSummary
    seconds_streaming: float
    throughput_per_s: float
    anomalies_logged: int
    anomaly_table: str
    pipeline: dict[str, Any]
    urls: dict[str, str] = field(default_factory=dict)
    warehouse_dataset: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stream"] = self.stream.as_dict()
        return out


def summarise_stream(
    scored: Iterable[Mapping[str, Any]], labels: Mapping[str, int]
) -> StreamSummary:
    """Count what the bridge scored against `labels` (transaction id -> is_fraud).

    Every produced transaction must appear; a transaction scored twice (at-least-once delivery
    after a restart) counts once, with its latest score.
    """
    latest: dict[str, Mapping[str, Any]] = {}
    seen = 0
    for record in scored:
        seen += 1
        latest[str(record["transaction_id"])] = record
    by_user: dict[str, tuple[int, str]] = {}
    latencies = []
    stamps = [int(r["scored_at_ms"]) for r in latest.values()]
    span_s = (max(stamps) - min(stamps)) / 1000 if stamps else 0.0
    for record in latest.values():
        latencies.append(float(record["latency_ms"]))
        band = record.get("risk_band")
        if band:
            user = str(record["user_id"])
            stamp = int(record["scored_at_ms"])
            if user not in by_user or by_user[user][0] <= stamp:
                by_user[user] = (stamp, str(band))
    flagged = {tx for tx, r in latest.items() if r["is_anomaly"]}
    fraud = {tx for tx, is_fraud in labels.items() if is_fraud}
    hits = len(flagged & fraud)
    bands = Counter(band for _, band in by_user.values())
    return StreamSummary(
        transactions_produced=len(labels),
        scored=len(latest.keys() & labels.keys()),
        missing=len(labels.keys() - latest.keys()),
        duplicates=seen - len(latest),
        flagged=len(flagged),
        true_fraud=len(fraud),
        true_positives=hits,
        precision=hits / len(flagged) if flagged else None,
        recall=hits / len(fraud) if fraud else None,
        users=len({str(r["user_id"]) for r in latest.values()}),
        risk_bands={name: bands.get(name, 0) for name in BAND_NAMES},
        latency_ms_p50=float(np.percentile(latencies, 50)) if latencies else None,
        latency_ms_p99=float(np.percentile(latencies, 99)) if latencies else None,
        scoring_rate_per_s=len(latest) / span_s if span_s > 0 else None,
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_summary(summary: DemoSummary) -> str:
    s = summary.stream
    bands = "  ".join(f"{name} {count}" for name, count in s.risk_bands.items())
    pipeline = summary.pipeline
    lines = [
        "",
        "finrisk demo: summary",
        "=====================",
        f"retraining      {pipeline.get('gate_decision', '?')}: champion detector "
        f"v{pipeline['champion'].get('detector')}, risk v{pipeline['champion'].get('risk')} "
        f"({pipeline['seconds']:.0f} s, local kfp run)",
        f"scored          {s.scored} of {s.transactions_produced} transactions "
        f"({s.missing} missing, {s.duplicates} redelivered)",
        f"flagged         {s.flagged} anomalies; {s.true_fraud} injected fraud",
        f"precision       {_pct(s.precision)}   recall {_pct(s.recall)}",
        f"risk bands      {bands}   ({s.users} users, latest band each)",
        f"throughput      {s.scoring_rate_per_s or 0:,.0f} transactions/s while scoring; "
        f"{summary.throughput_per_s:,.0f}/s over {summary.seconds_streaming:.1f} s including "
        "the bridge's start-up",
        # The stream is produced before the bridge starts: latency includes that wait.
        f"produce->score  p50 {s.latency_ms_p50 or 0:,.0f} ms, p99 {s.latency_ms_p99 or 0:,.0f} ms "
        "(includes the backlog queued before the bridge started)",
        f"anomaly log     {summary.anomalies_logged} rows in {summary.anomaly_table}",
    ]
    if summary.warehouse_dataset:
        lines.append(
            f"warehouse       {summary.warehouse_dataset}: scored records, outcomes, monitoring"
        )
    lines += [f"{name:<15} {url}" for name, url in summary.urls.items()]
    return "\n".join(lines) + "\n"
