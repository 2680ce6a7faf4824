"""One micro-batch: its messages parsed and checked, features computed, and what is left to do.

`prepare` runs in the bridge's thread: it parses each message in order (bad ones become dead
letters), skips those the restored state already includes, adds the rest to the online state
as one batch (features come out as two matrices, a row per transaction), and, when the batch
is a checkpoint, saves the state of every user changed since the last one (the batch's changelog
records) before the next batch can change them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt
from confluent_kafka import Message

from finrisk.schema import TRANSACTION_ID
from finrisk.serving.bridge.dead_letters import DUPLICATE, TOO_LARGE
from finrisk.serving.bridge.merchant_risk import MerchantRisk
from finrisk.serving.bridge.messages import BadMessage, MessageParser, Transaction
from finrisk.serving.bridge.outputs import Score
from finrisk.serving.bridge.records import OutRecord, where
from finrisk.serving.bridge.stages import Stage, check_transition, path_of
from finrisk.serving.bridge.state import ChangelogRecord, StateStore
from finrisk.sinks.base import AnomalyRecord

if TYPE_CHECKING:
    from finrisk.serving.bridge.delivery import Tracker
    from finrisk.serving.bridge.sink_writer import Flush


@dataclass
class Batch:
    """A micro-batch on its way out; each step done is recorded, so a retry resumes there."""

    rows: list[tuple[Message, Transaction]]
    # Per row: its input (partition, offset), and its input message's timestamp (ms, <= 0
    # when it has none).
    positions: list[tuple[int, int]]
    stamps_ms: npt.NDArray[np.int64]
    tx_matrix: np.ndarray
    user_matrix: np.ndarray
    dead: list[tuple[Message, str, str]]
    next_offsets: dict[int, int]  # input partition -> offset to commit
    changelog: list[ChangelogRecord]
    # Writes the changelog and commits the offsets of every batch up to it, once durable.
    checkpoint: bool = True
    # Exactly once: outputs, changelog and offsets go in one Kafka transaction.
    transacted: bool = False
    skipped: int = 0
    consume_errors: int = 0
    started: float = field(default_factory=time.perf_counter)
    # Scoring: in flight, then done.
    future: Future[list[Score]] | None = None
    scores: list[Score] | None = None
    scored_at_ms: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    outputs: list[OutRecord] | None = None
    # The monitoring records of the windows this batch closed (kept apart from the outputs,
    # which are rebuilt when rows leave the batch: a window is counted once).
    monitoring: list[OutRecord] | None = None
    # Where the batch is (finrisk.serving.bridge.stages); changed only by the methods below,
    # which refuse a transition the state machine does not have.
    stage: Stage = Stage.PREPARED
    outputs_sent: Tracker | None = None
    changelog_sent: Tracker | None = None
    anomalies: list[AnomalyRecord] = field(default_factory=list)
    anomaly_messages: list[Message] = field(default_factory=list)
    sink_flush: Flush | None = None
    late_sent: Tracker | None = None

    def sent(self, tracker: Tracker) -> None:
        """At least once: the outputs are out; `tracker` follows their acknowledgements."""
        self._move(Stage.SENT)
        self.outputs_sent = tracker

    def flushed(self) -> None:
        self._move(Stage.FLUSHED)

    def changelog_out(self, tracker: Tracker) -> None:
        self._move(Stage.CHANGELOG_SENT)
        self.changelog_sent = tracker

    def done(self) -> None:
        self._move(Stage.DONE)

    def _move(self, to: Stage) -> None:
        check_transition(
            self.stage, to, path_of(checkpoint=self.checkpoint, transacted=self.transacted)
        )
        self.stage = to

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.dead) + self.skipped

    @property
    def empty(self) -> bool:
        return not self.rows and not self.dead and not self.next_offsets and not self.changelog

    def settle_future(self) -> None:
        """Wait for scoring in flight; its result (or failure) is then kept, not lost."""
        if self.future is None:
            return
        future, self.future = self.future, None
        try:
            self.set_scores(future.result())
        except Exception:  # any failure: the next attempt scores it again, in order
            self.scores = None

    def forget_failed_scoring(self) -> None:
        future = self.future
        if future is not None and future.done() and future.exception() is not None:
            self.future = None

    def set_scores(self, scores: list[Score]) -> None:
        self.scores = scores
        self.scored_at_ms = now = int(time.time() * 1000)
        stamps = self.stamps_ms
        self.latencies_ms = np.where(stamps > 0, now - stamps, 0).astype(np.float64).tolist()

    def keep_rows(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        self.positions = [self.positions[i] for i in keep]
        self.stamps_ms = self.stamps_ms[keep]
        self.tx_matrix = self.tx_matrix[keep]
        self.user_matrix = self.user_matrix[keep]
        if self.scores is not None:
            self.scores = [self.scores[i] for i in keep]
            self.latencies_ms = [self.latencies_ms[i] for i in keep]
        self.outputs = None

    def drop_partitions(self, gone: set[int]) -> None:
        """Forget what is left to do for revoked partitions: their next owner replays them.

        Outputs already sent stay sent (a replay may duplicate them, as at least once allows);
        their changelog records and offsets must not follow, since a changelog record written
        after the next owner took over could later be restored over its newer state.
        """
        if self.stage is Stage.PREPARED:
            self.settle_future()
            keep = [i for i, (partition, _) in enumerate(self.positions) if partition not in gone]
            if len(keep) != len(self.rows):
                self.keep_rows(keep)
            self.dead = [d for d in self.dead if where(d[0])[0] not in gone]
            self.outputs = None  # rebuilt from what is kept
        self.next_offsets = {p: o for p, o in self.next_offsets.items() if p not in gone}
        self.changelog = [r for r in self.changelog if r.partition not in gone]


def prepare(
    messages: Sequence[Message],
    parser: MessageParser,
    state: StateStore,
    *,
    checkpoint: bool,
    transacted: bool = False,
    max_message_bytes: int | None = None,
    merchant: MerchantRisk | None = None,
) -> Batch:
    # Kafka's error events never get here: the loop's consume hands each batch of messages
    # through ConsumerErrors first, which takes them out (consumer_errors.py).
    consumed = list(messages)
    next_offsets = {partition: offset + 1 for partition, offset in map(where, consumed)}
    values = [msg.value() for msg in consumed]
    dead: list[tuple[Message, str, str]] = []
    if max_message_bytes is not None:
        consumed, values = _unread_if_too_large(consumed, values, max_message_bytes, dead)
    positions = list(map(where, consumed))
    parsed = parser.parse_batch(values)
    skipped = 0
    txs = parsed.columns  # of the valid transactions, in order
    if txs.size == len(consumed) and not state.may_include(positions):
        good = cast(list[Transaction], parsed.transactions)  # none is bad
        rows = list(zip(consumed, good, strict=True))  # and none is in the state yet
    else:
        rows = []
        kept: list[tuple[int, int]] = []
        keep: list[int] = []  # among the valid transactions
        valid = 0
        for msg, tx, at in zip(consumed, parsed.transactions, positions, strict=True):
            if isinstance(tx, BadMessage):
                dead.append((msg, tx.kind, tx.reason))
                continue
            # Against the state before this batch: a user's later messages in it come after.
            if state.applied(tx.user_id, *at):
                skipped += 1
            else:
                rows.append((msg, tx))
                kept.append(at)
                keep.append(valid)
            valid += 1
        positions = kept
        if len(keep) != txs.size:
            txs = txs.take(keep)
    repeats = state.recent.repeats(
        txs.user_id, [tx.fields[TRANSACTION_ID] for _, tx in rows], txs.timestamp_ns
    )
    if repeats:  # a producer's retry: neither scored nor counted again
        again = set(repeats)
        dead.extend((rows[i][0], DUPLICATE, _repeat_reason(rows[i][1], state)) for i in repeats)
        keep = [i for i in range(len(rows)) if i not in again]
        rows, positions, txs = [rows[i] for i in keep], [positions[i] for i in keep], txs.take(keep)
    tx_matrix, user_matrix = state.apply(txs, positions)
    if merchant is not None:  # after the users' features, in the same order
        ids = [tx.fields[TRANSACTION_ID] for _, tx in rows]
        merchant_rows = merchant.rows(txs.user_id, ids, txs.merchant, txs.timestamp_ns)
        tx_matrix = np.hstack([tx_matrix, merchant_rows])
    stamps = np.fromiter((msg.timestamp()[1] for msg, _ in rows), dtype=np.int64, count=len(rows))
    changelog: list[ChangelogRecord] = []
    if checkpoint:
        changelog = state.changelog()
        state.mark_clean()
    return Batch(
        rows=rows,
        positions=positions,
        stamps_ms=stamps,
        tx_matrix=tx_matrix,
        user_matrix=user_matrix,
        dead=dead,
        next_offsets=next_offsets,
        changelog=changelog,
        checkpoint=checkpoint,
        transacted=transacted,
        skipped=skipped,
        consume_errors=len(messages) - len(consumed),
    )


def _unread_if_too_large(
    consumed: list[Message],
    values: list[bytes | None],
    limit: int,
    dead: list[tuple[Message, str, str]],
) -> tuple[list[Message], list[bytes | None]]:
    """Messages over `limit` bytes (key and value) go to `dead` unparsed; the others stay."""
    sizes = [
        len(value or b"") + len(msg.key() or b"")
        for msg, value in zip(consumed, values, strict=True)
    ]
    if max(sizes, default=0) <= limit:
        return consumed, values
    keep = []
    for i, size in enumerate(sizes):
        if size > limit:
            reason = f"message is {size} bytes (key and value), over max_message_bytes {limit}"
            dead.append((consumed[i], TOO_LARGE, reason))
        else:
            keep.append(i)
    return [consumed[i] for i in keep], [values[i] for i in keep]


def _repeat_reason(tx: Transaction, state: StateStore) -> str:
    hours = state.recent.window_ns / 3_600_000_000_000
    return (
        f"transaction_id {tx.transaction_id!r} of user {tx.user_id!r} came before (within "
        f"{hours:g} h of the user's event time): not scored or counted again"
    )
