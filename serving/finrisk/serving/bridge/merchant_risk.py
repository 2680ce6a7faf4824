"""Merchant risk in the bridge: every partition of the `merchant-frauds` topic, read whole
(MerchantFraudFeed), the owner's placement of its users' labels (fraud_placement.py), and the
served merchant features of each batch (MerchantRisk); docs/bridge.md, "Merchant risk".

The users' state is partitioned by user; a merchant's frauds are not. So each instance reads
all of the topic with a group-less consumer assigned every partition from the beginning (not
as a group member, which would get a share), catches up to its end before the first input is
fetched, and then takes what is new before each batch is prepared. The records go into
`KnownFrauds` (finrisk.features.merchant_frauds), whose count at a transaction is as-of its
time, exactly as training computed it.

Recovery: the topic itself. A restarted or new instance reads it again from the start; frauds
older than the window are tombstoned or left to retention, so that read stays small (hundreds
of records a day at the benchmark's size). Hence no copy in the users' changelog: a second
copy would have to agree with the topic, and could only be older.

A record that cannot be taken (not JSON, wrong types, a label before its transaction) is
skipped with a warning naming it and counted (`finrisk_bridge_errors_total{kind=
"merchant_fraud_invalid"}`); the stream goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    Message,
    Producer,
    TopicPartition,
)

from finrisk.errors import FinriskError
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.features.formulas import merchant_formulas
from finrisk.features.merchant_frauds import (
    KnownFrauds,
    MerchantFraud,
    MerchantFraudError,
    decode,
)
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.fraud_placement import LABEL_INVALID, FraudPlacer
from finrisk.serving.bridge.metrics import BridgeMetrics
from finrisk.serving.bridge.records import where
from finrisk.serving.bridge.side_topics import at_end, read_to_end
from finrisk.serving.bridge.tx_merchants import TxMerchants
from finrisk.serving.bridge.v2_client import EndpointUnavailable, RequestRejected
from finrisk.settings import Settings

log = logging.getLogger("finrisk.bridge")

INVALID = "merchant_fraud_invalid"


def reads_merchant_risk(wanted: Sequence[str]) -> bool:
    """Whether a model's feature order names a merchant feature the bridge serves."""
    return any(name in SERVED_MERCHANT_FEATURES for name in wanted)


class MerchantFraudFeed:
    """A group-less consumer of every merchant-frauds partition, feeding KnownFrauds."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        on_invalid: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.known = KnownFrauds()
        self.on_invalid = on_invalid
        self.records = 0
        self.invalid = 0

    def close(self) -> None:
        self.consumer.close()

    def start(self, timeout_s: float = 300.0) -> int:
        """Assign every partition from the beginning and read to the end; records read."""
        topic = self.consumer.list_topics(self.topic, timeout=30).topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise FinriskError(f"merchant-frauds topic {self.topic}: not found")
        partitions = sorted(topic.partitions)
        self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        what = f"merchant frauds from {self.topic}"
        read_to_end(self.consumer, partitions, self._take, what, timeout_s)
        log.info("merchant frauds: %d records read from %s", self.records, self.topic)
        return self.records

    def poll(self) -> int:
        """Take the records that arrived since (never waits); how many were read."""
        before = self.records
        for msg in self.consumer.consume(10_000, 0):
            self._take(msg)
        return self.records - before

    def _take(self, msg: Message) -> bool:
        """Apply one message; True when it marks the end of its partition."""
        end = at_end(msg, f"merchant frauds from {self.topic}")
        if end is not None:
            return end
        self.records += 1
        value = msg.value()
        if value is None:  # a tombstone: an old fraud dropped by its publisher
            return False
        try:
            self.known.add(decode(value))
        except MerchantFraudError as exc:
            self.invalid += 1
            partition, offset = where(msg)
            reason = f"{self.topic}[{partition}]@{offset}: {exc}; skipped"
            log.warning("merchant-frauds record %s", reason)
            self.on_invalid(reason)
        return False

    def features(
        self, merchants: Sequence[str], ts_ns: Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """SERVED_MERCHANT_FEATURES of each transaction (merchant, time), one row each."""
        counts = self.known.counts(merchants, ts_ns)
        # The served features come first in merchant_formulas and read the count only: the
        # window size (0 here) goes into the rate, which is not served.
        values = merchant_formulas(counts, 0.0)[: len(SERVED_MERCHANT_FEATURES)]
        return np.column_stack([np.asarray(v, dtype=np.float64) for v in values])


class MerchantRisk:
    """The feed (every merchant's frauds) and the placer (this instance's users' labels), and
    the served merchant features of each batch."""

    def __init__(self, feed: MerchantFraudFeed, placer: FraudPlacer, producer: Producer) -> None:
        self.feed = feed
        self.placer = placer
        self.producer = producer

    def rows(
        self,
        users: Sequence[str],
        tx_ids: Sequence[str],
        merchants: Sequence[object],
        ts_ns: Sequence[int] | npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:
        """SERVED_MERCHANT_FEATURES of a batch's transactions (in order), from the frauds read
        and placed so far, these transactions' own labels included."""
        self.feed.poll()
        names = [str(m) for m in merchants]
        stamps = [int(t) for t in ts_ns]
        # Placed before the counts: a fraud counts only where its label was known (as-of), so
        # placing early leaks nothing, and a later transaction of this batch finds it.
        self.placer.merchants.observe(users, tx_ids, names, stamps)
        self.placer.poll()
        self.placer.observed(users, tx_ids, stamps)
        self.producer.poll(0)
        return self.feed.features(names, stamps)

    def close(self) -> None:
        unsent = self.producer.flush(10)
        log.info(
            "merchant risk: placed %d frauds (%d unsent), skipped %d label and %d "
            "merchant-frauds records",
            self.placer.placed,
            unsent,
            self.placer.invalid,
            self.feed.invalid,
        )
        self.placer.close()
        self.feed.close()


def open_merchant_risk(
    settings: Settings, scorer: object, metrics: BridgeMetrics
) -> MerchantRisk | None:
    """Merchant risk, its feed read to its end, when the served detector reads it; else None
    (the bridge then neither reads nor creates its topics)."""
    # Scorers other than V2Scorer (tests' fakes) serve no merchant risk.
    ask = getattr(scorer, "detector_reads_merchant_risk", None)
    if ask is None:
        return None
    try:
        if not ask():
            return None
    except (EndpointUnavailable, RequestRejected) as exc:
        # As before merchant risk: a predictor down at start pauses the stream, it does not
        # stop the bridge. A detector that reads merchant risk then ends the run at its first
        # batch (binding.RestartToBind), and the bridge starts again, with merchant risk.
        log.warning("could not ask the predictor whether the detector reads merchant risk: %s", exc)
        return None
    bridge = settings.bridge
    kafka_config.ensure_merchant_frauds_topic(settings)
    feed = MerchantFraudFeed(
        Consumer(kafka_config.restore_consumer_config(settings)),
        bridge.merchant_frauds_topic,
        lambda reason: metrics.errors.labels(INVALID).inc(),
    )
    feed.start()
    producer = Producer(kafka_config.producer_config(settings, transactional=False))
    topic = bridge.merchant_frauds_topic

    def publish(fraud: MerchantFraud) -> None:
        try:
            producer.produce(topic, key=fraud.key, value=fraud.value)
        except BufferError:  # the queue is full: let it drain, then once more
            producer.poll(1)
            producer.produce(topic, key=fraud.key, value=fraud.value)

    labels = Consumer(kafka_config.restore_consumer_config(settings))
    placer = FraudPlacer(
        labels,
        settings.labels.labels_topic,
        feed.known,
        TxMerchants(),
        publish,
        lambda reason: metrics.errors.labels(LABEL_INVALID).inc(),
    )
    log.info(
        "merchant risk: %d frauds known from %s; placing labels from %s",
        len(feed.known),
        topic,
        settings.labels.labels_topic,
    )
    return MerchantRisk(feed, placer, producer)
