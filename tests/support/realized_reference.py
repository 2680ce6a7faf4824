"""Realized metrics computed in plain Python from the records themselves, independently of
the SQL in finrisk.monitoring.realized: what its numbers are checked against."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from finrisk.monitoring.realized import RealizedDay
from finrisk.outcomes import Outcomes

_FRAUD = {"fraud_confirmed", "chargeback"}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _first_scorings(scored: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    first: dict[str, Mapping[str, Any]] = {}
    for record in scored:  # a transaction's first scoring
        seen = first.get(record["transaction_id"])
        if seen is None or record["scored_at_ms"] < seen["scored_at_ms"]:
            first[record["transaction_id"]] = record
    return first


def reference_shadowed(
    scored: Iterable[Mapping[str, Any]],
    labels: Iterable[Mapping[str, Any]],
    *,
    champion_version: str,
    challenger_version: str,
) -> tuple[Outcomes, Outcomes]:
    """(champion, challenger) on the transactions `challenger_version` shadowed beside
    `champion_version`, as finrisk.monitoring.realized.shadowed_outcomes counts them."""
    outcomes: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        outcomes[label["transaction_id"]].add(label["outcome"])
    paired = [
        (tx, record)
        for tx, record in _first_scorings(scored).items()
        if record["detector_version"] == champion_version
        and record.get("challenger_version") == challenger_version
    ]
    fraud = {tx for tx, _ in paired if outcomes.get(tx, set()) & _FRAUD}

    def of(flag: str) -> Outcomes:
        alerted = [tx for tx, record in paired if record.get(flag)]
        return Outcomes(
            scored=len(paired),
            labelled=sum(1 for tx, _ in paired if tx in outcomes),
            confirmed_fraud=len(fraud),
            alerted=len(alerted),
            true_alerts=sum(1 for tx in alerted if tx in fraud),
        )

    return of("is_anomaly"), of("challenger_is_anomaly")


def reference_realized(
    scored: Iterable[Mapping[str, Any]], labels: Iterable[Mapping[str, Any]]
) -> list[RealizedDay]:
    """`scored`: scored records as the bridge writes them (event_time, scored_at_ms, ...);
    `labels`: label records. Replays (repeated records) count once."""
    first = _first_scorings(scored)
    outcomes: dict[str, set[str]] = defaultdict(set)
    known: dict[str, datetime] = {}
    for label in labels:
        tx = label["transaction_id"]
        outcomes[tx].add(label["outcome"])
        at = _time(label["labelled_at"])
        known[tx] = min(known.get(tx, at), at)

    groups: dict[tuple[str, str, Any], list[tuple[bool, str, datetime]]] = defaultdict(list)
    for tx, record in first.items():
        event = _time(record["event_time"])
        groups[("champion", record["detector_version"], event.date())].append(
            (record["is_anomaly"], tx, event)
        )
        if record.get("challenger_version") is not None:
            groups[("challenger", record["challenger_version"], event.date())].append(
                (bool(record.get("challenger_is_anomaly")), tx, event)
            )
    out = []
    for (role, version, day), rows in groups.items():
        labelled = [(a, tx, e) for a, tx, e in rows if tx in outcomes]
        fraud = [(a, tx, e) for a, tx, e in labelled if outcomes[tx] & _FRAUD]
        delays = [(known[tx] - e).total_seconds() / 86_400 for _, tx, e in labelled]
        out.append(
            RealizedDay.from_counts(
                role,
                version,
                day,
                scored=len(rows),
                labelled=len(labelled),
                confirmed_fraud=len(fraud),
                alerted=sum(1 for a, _, _ in rows if a),
                true_alerts=sum(1 for a, _, _ in fraud if a),
                median_label_delay_days=statistics.median(delays) if delays else None,
            )
        )
    return sorted(out, key=lambda d: (d.day, d.role, d.model_version))
