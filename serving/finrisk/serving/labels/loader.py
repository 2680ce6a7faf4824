"""`finrisk labels load`: the labels, scored and monitoring topics into BigQuery, at least
once (the warehouse the realized metrics and `finrisk monitor` read).

A long-running consumer in its own group (a Kafka-to-BigQuery connector in miniature). Each
batch (at most `batch_max_records`, or what `batch_max_wait_ms` brings) is decoded, its rows
streamed into the two tables with insertIds, the records that cannot be loaded sent to the
dead-letter topic, and only then, when BigQuery has taken the rows and Kafka the dead letters,
are the batch's offsets committed. A crash in between replays the batch: rows whose insertId
BigQuery has seen are dropped (best effort), and the warehouse's queries count each
transaction once in any case (finrisk.monitoring.warehouse).

A record that is not JSON, or not a label or scored record (finrisk.labels,
finrisk.monitoring.warehouse), and a row BigQuery refuses, are dead-lettered in the bridge's
form (finrisk.serving.bridge.dead_letters: the message as it came, with
`finrisk.error.kind`/`finrisk.error.reason` and where it came from) and never stop the loader.
BigQuery failing past `sink_timeout_s` does: the process exits without committing, and its
restart (Kubernetes') replays the batch.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from google.cloud import bigquery

from finrisk.bigquery_client import bigquery_client
from finrisk.errors import FinriskError
from finrisk.monitoring.warehouse import Tables, ensure_tables
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.dead_letters import SINK_REJECTED, DeadLetters
from finrisk.serving.bridge.records import OutRecord, headers_of, where
from finrisk.serving.labels.decode import LABELS, MONITORING, SCORED, Refused, Row, decode
from finrisk.settings import Settings
from finrisk.sinks.bigquery import insert_rows

log = logging.getLogger(__name__)


@dataclass
class LoadStats:
    labels: int = 0
    scored: int = 0
    monitoring: int = 0
    dead_lettered: int = 0
    batches: int = 0

    @property
    def records(self) -> int:
        return self.labels + self.scored + self.monitoring + self.dead_lettered

    def as_dict(self) -> dict[str, int]:
        return {
            "labels": self.labels,
            "scored": self.scored,
            "monitoring": self.monitoring,
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
        }


def tables_of(settings: Settings) -> Tables:
    labels = settings.labels
    return Tables(
        labels.bigquery_project or settings.bigquery.project,
        labels.bigquery_dataset,
        labels.labels_table,
        labels.scored_table,
        labels.monitoring_table,
    )


class LabelLoader:
    def __init__(self, settings: Settings, *, client: bigquery.Client | None = None) -> None:
        self.settings = settings
        cfg = settings.labels
        self.tables = tables_of(settings)
        self.client = client or bigquery_client(self.tables.project, cfg.bigquery_endpoint)
        ensure_tables(self.client, self.tables, location=cfg.bigquery_location)
        for topic in (cfg.labels_topic, cfg.scored_topic, cfg.monitoring_topic, cfg.dlq_topic):
            kafka_config.ensure_topic(settings, topic)
        self.table_of_topic = {
            cfg.labels_topic: LABELS,
            cfg.scored_topic: SCORED,
            cfg.monitoring_topic: MONITORING,
        }
        self.dead_letters = DeadLetters(
            cfg.dlq_topic, kafka_config.max_record_bytes(settings, cfg.dlq_topic)
        )
        connection = kafka_config.client_config(settings)
        self.producer = Producer({**connection, "enable.idempotence": True, "acks": "all"})
        self.consumer = Consumer(
            {
                **connection,
                "group.id": cfg.group_id,
                # Offsets are committed by hand, only once the batch is in BigQuery.
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                # The bridge writes the scored topic in transactions when exactly once.
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        self.assigned: set[tuple[str, int]] = set()
        self.at_end: set[tuple[str, int]] = set()
        self.consumer.subscribe(
            list(self.table_of_topic), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self.stats = LoadStats()

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned -= gone
        self.at_end -= gone

    @property
    def caught_up(self) -> bool:
        """Every assigned partition read to its end (and something is assigned)."""
        return bool(self.assigned) and self.assigned <= self.at_end

    def step(self, max_records: int | None = None) -> int:
        """Load one batch; the records it consumed."""
        cfg = self.settings.labels
        wanted = (
            cfg.batch_max_records
            if max_records is None
            else min(max_records, cfg.batch_max_records)
        )
        messages = self.consumer.consume(wanted, cfg.batch_max_wait_ms / 1000)
        rows: dict[str, list[tuple[Row, Message]]] = defaultdict(list)
        dead: list[OutRecord] = []
        offsets: dict[tuple[str, int], int] = {}
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.at_end.add((msg.topic() or "", msg.partition() or 0))
                elif error.fatal():
                    raise FinriskError(f"Kafka: {error}")
                else:
                    log.warning("Kafka: %s", error)
                continue
            topic = msg.topic() or ""
            partition, offset = where(msg)
            self.at_end.discard((topic, partition))
            offsets[(topic, partition)] = max(offsets.get((topic, partition), -1), offset)
            decoded = decode(self.table_of_topic[topic], msg.value())
            if isinstance(decoded, Refused):
                dead.append(self._dead_letter(msg, decoded.kind, decoded.reason))
            else:
                rows[decoded.table].append((decoded, msg))
        if not offsets:
            return 0
        for table, table_id in (
            (LABELS, self.tables.labels_id),
            (SCORED, self.tables.scored_id),
            (MONITORING, self.tables.monitoring_id),
        ):
            batch = rows.get(table, [])
            refused = insert_rows(
                self.client,
                table_id,
                [(row.row_id, row.values) for row, _ in batch],
                deadline_s=cfg.sink_timeout_s,
            )
            for index, reason in refused:
                dead.append(self._dead_letter(batch[index][1], SINK_REJECTED, reason))
            stored = len(batch) - len(refused)
            # LoadStats counts each table under its kind's name.
            setattr(self.stats, table, getattr(self.stats, table) + stored)
        self._send(dead)
        self.stats.dead_lettered += len(dead)
        self._commit(offsets)
        self.stats.batches += 1
        return sum(1 for msg in messages if msg.error() is None)

    def _dead_letter(self, msg: Message, kind: str, reason: str) -> OutRecord:
        partition, offset = where(msg)
        log.warning("dead-lettered %s[%d]@%d: %s: %s", msg.topic(), partition, offset, kind, reason)
        return self.dead_letters.record(
            kind,
            reason,
            key=msg.key(),
            value=msg.value(),
            source=(msg.topic() or "", partition, offset),
            headers=headers_of(msg),
        )

    def _send(self, records: list[OutRecord]) -> None:
        """Dead letters, each acknowledged before the offsets past them are committed."""
        if not records:
            return
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _msg: Message) -> None:
            if error is not None:
                failures.append(error)

        for topic, key, value, headers, _ in records:
            self.producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
        left = self.producer.flush(self.settings.labels.sink_timeout_s)
        if left or failures:
            raise FinriskError(
                f"{left or len(failures)} dead letters were not acknowledged by "
                f"{self.settings.labels.dlq_topic}: {failures[0] if failures else 'timed out'}"
            )

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        positions = [TopicPartition(t, p, o + 1) for (t, p), o in offsets.items()]
        try:
            self.consumer.commit(offsets=positions, asynchronous=False)
        except KafkaException as exc:
            # A partition moved to another member meanwhile: it replays from the last commit,
            # and the replayed rows count once (insertIds, deduplicating queries).
            log.warning("offsets not committed (%s): the next owner replays them", exc)

    def run(
        self,
        *,
        once: bool = False,
        max_records: int | None = None,
        assignment_timeout_s: float = 60.0,
    ) -> LoadStats:
        """Load until stopped; `once`: until every assigned partition is read to its end;
        `max_records`: until that many records were handled."""
        started = time.monotonic()
        while True:
            left = None if max_records is None else max_records - self.stats.records
            if left is not None and left <= 0:
                return self.stats
            consumed = self.step(left)
            if once and consumed == 0 and self.caught_up:
                return self.stats
            if once and not self.assigned and time.monotonic() - started > assignment_timeout_s:
                raise FinriskError(
                    f"no partition of {sorted(self.table_of_topic)} was assigned to group "
                    f"{self.settings.labels.group_id} within {assignment_timeout_s:g} s"
                )

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(5)
        self.client.close()


def load(settings: Settings, **run: Any) -> LoadStats:
    loader = LabelLoader(settings)
    try:
        return loader.run(**run)
    finally:
        loader.close()
