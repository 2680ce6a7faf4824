"""The owner places its users' fraud labels at their merchants: once each, as-of the label's
time, a label before its transaction waits for it; hostile label records are skipped. The
placement state travels in the changelog beside the user's and comes back on restore."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from finrisk.features.definitions import MERCHANT_RISK_WINDOW_NS
from finrisk.features.merchant_frauds import KnownFrauds, MerchantFraud
from finrisk.labels import CHARGEBACK, FRAUD_CONFIRMED, LEGITIMATE, LabelRecord
from finrisk.serving.bridge.fraud_placement import FraudPlacer
from finrisk.serving.bridge.state import KIND_HEADER, MERCHANT_KIND, StateStore
from finrisk.serving.bridge.tx_merchants import TxMerchants

DAY = 86_400 * 10**9


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _label(tx: str, outcome: str, event_ns: int, labelled_ns: int, user: str = "u1") -> bytes:
    return LabelRecord(tx, user, _at(event_ns), outcome, _at(labelled_ns), "test").to_json()


class Labels:
    """A consumer of the labels topic whose messages the test hands it."""

    def __init__(self) -> None:
        self.queue: list[Message] = []
        self.assigned: list[tuple[str, int, int]] = []
        self.offset = 0

    def add(self, value: bytes) -> None:
        self.queue.append(Message(topic="labels", partition=0, offset=self.offset, value=value))
        self.offset += 1

    def consume(self, num: int, timeout: float) -> list[Message]:
        out, self.queue = self.queue, []
        return out

    def eof(self, partition: int) -> None:
        self.queue.append(
            Message(
                topic="labels",
                partition=partition,
                offset=self.offset,
                error=KafkaError(KafkaError._PARTITION_EOF),
            )
        )

    def incremental_assign(self, tps: list[Any]) -> None:
        self.assigned += [(tp.topic, tp.partition, tp.offset) for tp in tps]

    def incremental_unassign(self, tps: list[Any]) -> None:
        gone = {tp.partition for tp in tps}
        self.assigned = [a for a in self.assigned if a[1] not in gone]


@pytest.fixture
def setup() -> tuple[FraudPlacer, Labels, list[MerchantFraud]]:
    labels = Labels()
    published: list[MerchantFraud] = []
    placer = FraudPlacer(labels, "labels", KnownFrauds(), TxMerchants(), published.append)  # type: ignore[arg-type]
    placer.merchants.observe(["u1", "u1"], ["t1", "t2"], ["shop", "cafe"], [10 * DAY, 11 * DAY])
    return placer, labels, published


def test_a_fraud_label_is_placed_at_its_merchant_once(
    setup: tuple[FraudPlacer, Labels, list[MerchantFraud]],
) -> None:
    placer, labels, published = setup
    labels.add(_label("t1", FRAUD_CONFIRMED, 10 * DAY, 12 * DAY))
    labels.add(_label("t1", CHARGEBACK, 10 * DAY, 30 * DAY))  # later: changes nothing
    labels.add(_label("t2", LEGITIMATE, 11 * DAY, 13 * DAY))  # not fraud
    assert placer.poll() == 1
    assert published == [MerchantFraud("shop", "t1", 10 * DAY, 12 * DAY)]
    # Counted at once here, as-of its label's time.
    assert placer.known.count("shop", 12 * DAY) == 1
    assert placer.known.count("shop", 12 * DAY - 1) == 0


def test_a_fraud_this_instance_knows_already_is_not_published_again(
    setup: tuple[FraudPlacer, Labels, list[MerchantFraud]],
) -> None:
    placer, labels, published = setup
    placer.known.add(MerchantFraud("shop", "t1", 10 * DAY, 12 * DAY))  # read from the topic
    labels.add(_label("t1", FRAUD_CONFIRMED, 10 * DAY, 12 * DAY))
    assert placer.poll() == 0 and published == []


def test_a_label_before_its_transaction_waits_for_it(
    setup: tuple[FraudPlacer, Labels, list[MerchantFraud]],
) -> None:
    placer, labels, published = setup
    labels.add(_label("t9", FRAUD_CONFIRMED, 20 * DAY, 21 * DAY))
    placer.poll()
    assert published == [] and placer.pending
    placer.merchants.observe(["u1"], ["t9"], ["bar"], [20 * DAY])
    placer.observed(["u1"], ["t9"], [20 * DAY])
    assert published == [MerchantFraud("bar", "t9", 20 * DAY, 21 * DAY)]
    assert not placer.pending


def test_waiting_labels_expire_behind_the_stream(
    setup: tuple[FraudPlacer, Labels, list[MerchantFraud]],
) -> None:
    placer, labels, _ = setup
    labels.add(_label("t9", FRAUD_CONFIRMED, 1 * DAY, 2 * DAY))
    placer.poll()
    placer.observed(["u1"], ["t3"], [2 * DAY + MERCHANT_RISK_WINDOW_NS + 1])
    assert not placer.pending


def test_a_label_known_before_its_transaction_is_ignored(
    setup: tuple[FraudPlacer, Labels, list[MerchantFraud]],
) -> None:
    placer, labels, published = setup
    # The label record says event 10 days but the transaction seen happened at day 11.
    labels.add(_label("t2", FRAUD_CONFIRMED, 10 * DAY, 10 * DAY + 1))
    placer.poll()
    assert published == []


def test_hostile_label_records_are_skipped_naming_the_fault(
    setup: tuple[FraudPlacer, Labels, list[MerchantFraud]],
) -> None:
    placer, labels, published = setup
    reasons: list[str] = []
    placer.on_invalid = reasons.append
    labels.add(b"{not json")
    labels.add(b'{"transaction_id": 3}')
    labels.add(_label("t1", FRAUD_CONFIRMED, 10 * DAY, 12 * DAY))
    assert placer.poll() == 1 and len(published) == 1  # the good one after them counts
    assert placer.invalid == 2 and len(reasons) == 2
    assert all(r.startswith("labels[0]@") and r.endswith("skipped") for r in reasons)


def test_labels_partitions_follow_the_input_assignment_from_their_start(
    setup: tuple[FraudPlacer, Labels, list[MerchantFraud]],
) -> None:
    placer, labels, published = setup
    labels.add(_label("t1", FRAUD_CONFIRMED, 10 * DAY, 12 * DAY))
    labels.eof(0)
    labels.eof(3)
    assert placer.assign([0, 3]) == 1  # read to the end before any input: placed already
    assert len(published) == 1
    assert [(t, p) for t, p, _ in labels.assigned] == [("labels", 0), ("labels", 3)]
    assert {offset for *_, offset in labels.assigned} == {-2}  # OFFSET_BEGINNING
    placer.revoke([0])
    assert [(t, p) for t, p, _ in labels.assigned] == [("labels", 3)]


def test_tx_merchants_keep_the_window_only() -> None:
    merchants = TxMerchants()
    merchants.observe(["u"], ["old"], ["m"], [1 * DAY])
    merchants.observe(["u"], ["new"], ["m"], [1 * DAY + MERCHANT_RISK_WINDOW_NS])
    assert merchants.lookup("u", "old") is None
    assert merchants.lookup("u", "new") == ("m", 1 * DAY + MERCHANT_RISK_WINDOW_NS)


def test_placement_state_goes_to_the_changelog_and_comes_back() -> None:
    from finrisk.serving.bridge.messages import MessageParser
    from finrisk.serving.bridge.producer import synthetic_records

    store = StateStore()
    store.merchants = TxMerchants()
    parser = MessageParser()
    txs = parser.parse_batch([v for _, v in synthetic_records(20, users=3, days=5, seed=1)])
    cols = txs.columns
    store.apply(cols, [(0, i) for i in range(cols.size)])
    ids = [t.transaction_id for t in txs.transactions]  # type: ignore[union-attr]
    store.merchants.observe(cols.user_id, ids, cols.merchant, cols.timestamp_ns)
    records = store.changelog()
    store.mark_clean()
    kinds = [dict(r.headers).get(KIND_HEADER) for r in records]
    assert kinds.count(MERCHANT_KIND) == len(set(cols.user_id))
    restored = StateStore()
    restored.merchants = TxMerchants()
    for r in records:
        restored.restore(r.key, r.value, r.partition, r.headers)
    for user, tx, merchant in zip(cols.user_id, ids, cols.merchant, strict=True):
        assert restored.merchants.lookup(user, tx) == store.merchants.lookup(user, tx)
        assert restored.merchants.lookup(user, tx)[0] == str(merchant)  # type: ignore[index]
    assert len(restored) == len(set(cols.user_id))  # the merchant records are not users
    # Without merchant risk served, a merchant record is ignored, not read as a user.
    plain = StateStore()
    for r in records:
        plain.restore(r.key, r.value, r.partition, r.headers)
    assert len(plain) == len(set(cols.user_id))
    # A revoked partition drops the placement state with the users.
    restored.drop_partitions([0])
    assert len(restored.merchants) == 0
