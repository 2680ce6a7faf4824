"""A batch's scores and what it sends: scored records, dead letters, and anomaly rows.

Scoring runs in a worker thread (submitted when the batch is prepared); the loop takes its
answer here. Rows the models reject are isolated by splitting the batch, and dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Message

from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.dead_letters import MODEL_REJECTED
from finrisk.serving.bridge.outputs import HISTORY_DAYS_COLUMN, Score, anomaly_record, scored_values
from finrisk.serving.bridge.records import OutRecord
from finrisk.serving.bridge.scoring import Scorer
from finrisk.serving.bridge.v2_client import RequestRejected

log = logging.getLogger("finrisk.bridge")

DeadLetter = Callable[[Message, str, str], OutRecord]


def take_scores(batch: Batch, scorer: Scorer) -> None:
    """The batch's scores: from its worker thread, or asked now if it had none."""
    future, batch.future = batch.future, None
    try:
        if future is not None:
            batch.set_scores(future.result())
        else:
            batch.set_scores(scorer.score(batch.tx_matrix, batch.user_matrix))
    except RequestRejected as exc:
        _isolate_rejected(batch, scorer, exc)


def _isolate_rejected(batch: Batch, scorer: Scorer, first: RequestRejected) -> None:
    """Split the batch until the rows the models reject are alone; dead-letter those."""
    log.warning("the predictor rejected a batch of %d: %s", len(batch.rows), first)
    scores: dict[int, Score] = {}
    rejected: dict[int, str] = {}

    def visit(indices: list[int]) -> None:
        try:
            got = scorer.score(batch.tx_matrix[indices], batch.user_matrix[indices])
        except RequestRejected as exc:
            if len(indices) == 1:
                rejected[indices[0]] = exc.message
                return
            half = len(indices) // 2
            visit(indices[:half])
            visit(indices[half:])
            return
        scores.update(zip(indices, got, strict=True))

    visit(list(range(len(batch.rows))))
    for index, reason in rejected.items():
        batch.dead.append((batch.rows[index][0], MODEL_REJECTED, reason))
    keep = sorted(scores)
    batch.keep_rows(keep)
    batch.set_scores([scores[i] for i in keep])


def records(batch: Batch, scored_topic: str, dead_letter: DeadLetter) -> list[OutRecord]:
    """The scored record of every scored row, then the dead letter of every bad message."""
    assert batch.scores is not None
    values = scored_values(
        [tx for _, tx in batch.rows],
        batch.scores,
        scored_at_ms=batch.scored_at_ms,
        latencies_ms=batch.latencies_ms,
        positions=batch.positions,
        history_days=batch.user_matrix[:, HISTORY_DAYS_COLUMN].tolist(),
    )
    out: list[OutRecord] = [
        (scored_topic, msg.key(), value, None, None)
        for (msg, _), value in zip(batch.rows, values, strict=True)
    ]
    out.extend(dead_letter(msg, kind, reason) for msg, kind, reason in batch.dead)
    return out


def collect_anomalies(batch: Batch) -> None:
    """The batch's anomaly records for the sink, and their input messages."""
    assert batch.scores is not None
    for (msg, tx), score, latency in zip(batch.rows, batch.scores, batch.latencies_ms, strict=True):
        if score.is_anomaly:
            batch.anomalies.append(
                anomaly_record(tx, score, scored_at_ms=batch.scored_at_ms, latency_ms=latency)
            )
            batch.anomaly_messages.append(msg)
