"""Placing confirmed fraud labels at their merchants, and publishing them to `merchant-frauds`.

The labels topic is keyed by user like the input, with as many partitions, so labels partition
p holds the labels of input partition p's users: the owner of input partition p, which saw
their transactions (tx_merchants.py), reads labels partition p with a group-less consumer
assigned and unassigned along with the input partition; on assignment it reads it to its end
before the input partition's first message, as it restores the users' state first (so a replay
places the labels that were there before it). A fraud label whose transaction it
knows becomes a MerchantFraud (merchant, transaction, event time, earliest labelled_at),
counted at once by this instance and published for the others (merchant_risk.py reads it back).

Each assignment reads its labels partition from the start, so a new owner places again what
the old one may not have published; a fraud this instance already knows (it read the topic
whole before) is not published twice. A label that comes before its transaction (a replay out
of order) waits until the transaction is seen, at most MERCHANT_RISK_WINDOW_DAYS behind the
newest transaction. A record that is not a label record is skipped with a warning and counted
(`finrisk_bridge_errors_total{kind="label_invalid"}`); a label known before its transaction
happened is ignored, as in the batch path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from finrisk.features.definitions import MERCHANT_RISK_WINDOW_NS
from finrisk.features.merchant_frauds import KnownFrauds, MerchantFraud
from finrisk.labels import LabelError, parse_label
from finrisk.serving.bridge.records import where
from finrisk.serving.bridge.side_topics import at_end, read_to_end
from finrisk.serving.bridge.tx_merchants import TxMerchants

log = logging.getLogger("finrisk.bridge")

LABEL_INVALID = "label_invalid"
# Labels waiting for their transaction, at most: a bound on a replay's memory.
MAX_PENDING = 100_000

Publish = Callable[[MerchantFraud], None]


class FraudPlacer:
    def __init__(
        self,
        consumer: Consumer,
        labels_topic: str,
        known: KnownFrauds,
        merchants: TxMerchants,
        publish: Publish,
        on_invalid: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.consumer = consumer
        self.topic = labels_topic
        self.known = known
        self.merchants = merchants
        self.publish = publish
        self.on_invalid = on_invalid
        # (user, transaction) -> earliest fraud labelled_at (ns), transaction not seen yet
        self.pending: dict[tuple[str, str], int] = {}
        self.placed = 0
        self.invalid = 0
        self._clock = -(2**62)

    def close(self) -> None:
        self.consumer.close()

    def assign(self, partitions: Iterable[int], timeout_s: float = 300.0) -> int:
        """Read these labels partitions from their start to their end, before the input
        partitions' first message (as their users' state is restored first), then keep them
        assigned; the frauds placed meanwhile."""
        todo = set(partitions)
        if not todo:
            return 0
        before = self.placed
        self.consumer.incremental_assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(todo)]
        )
        read_to_end(self.consumer, todo, self._take, f"labels from {self.topic}", timeout_s)
        return self.placed - before

    def revoke(self, partitions: Iterable[int]) -> None:
        """Stop reading these labels partitions (their waiting labels expire by age)."""
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if tps:
            self.consumer.incremental_unassign(tps)

    def poll(self) -> int:
        """Take the labels that arrived (never waits); how many frauds were placed."""
        before = self.placed
        for msg in self.consumer.consume(10_000, 0):
            self._take(msg)
        return self.placed - before

    def observed(self, users: Sequence[str], tx_ids: Sequence[str], ts_ns: Iterable[int]) -> None:
        """After a batch's transactions went into `merchants`: place the labels waiting for
        them, and drop waiting labels too old to count anywhere."""
        stamps = list(ts_ns)
        if stamps:
            self._clock = max(self._clock, max(stamps))
        if not self.pending:
            return
        for user, tx in zip(users, tx_ids, strict=True):
            at = self.pending.pop((user, tx), None)
            if at is not None:
                self._place(user, tx, at)
        low = self._clock - MERCHANT_RISK_WINDOW_NS
        self.pending = {k: at for k, at in self.pending.items() if at > low}

    def _take(self, msg: Message) -> bool:
        """Apply one message; True when it marks the end of its partition."""
        end = at_end(msg, f"labels from {self.topic}")
        if end is not None:
            return end
        try:
            record = parse_label(msg.value() or b"")
        except LabelError as exc:
            self.invalid += 1
            partition, offset = where(msg)
            reason = f"{self.topic}[{partition}]@{offset}: {exc}; skipped"
            log.warning("label record %s", reason)
            self.on_invalid(reason)
            return False
        if not record.is_fraud:
            return False
        at = pd.Timestamp(record.labelled_at).value  # as the batch path reads it
        user, tx = record.user_id, record.transaction_id
        if self.merchants.lookup(user, tx) is None:
            if len(self.pending) < MAX_PENDING:
                key = (user, tx)
                self.pending[key] = min(at, self.pending.get(key, at))
            return False
        self._place(user, tx, at)
        return False

    def _place(self, user: str, tx: str, labelled_ns: int) -> None:
        seen = self.merchants.lookup(user, tx)
        if seen is None:
            return
        merchant, event = seen
        if labelled_ns < event:  # known before it happened: inconsistent, ignored
            return
        fraud = MerchantFraud(merchant, tx, event, labelled_ns)
        if self.known.add(fraud):
            self.placed += 1
            self.publish(fraud)
