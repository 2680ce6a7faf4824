"""Per-user feature state that survives restarts and rebalances, through a changelog topic.

The state is `finrisk.features.OnlineFeatures`. Besides it, the store remembers for each user
the input position (partition, offset) of the last transaction its state includes, and the
user's recent transaction ids (`dedup.RecentIds`: a repeated transaction is not counted again).

At each checkpoint, once the outputs of every batch up to it are durable, the bridge writes one
changelog record per user changed since the last checkpoint: key = user id, value = the user's
recent transaction ids (a JSON line) then their features' saved state, header = that input offset.
The changelog is compacted and has one partition per input partition; a user's record goes to
the partition their transactions come from. On assignment of input partition p, the bridge
reads changelog partition p to its end and restores every user in it, each from its record of
the highest input offset (a member expired in a stall may have written a stale one after the
new owner's).

A restored state may be ahead of the committed input offset (the process died after writing
the changelog, before committing). The transactions in between were scored and their outputs
made durable before the changelog record was written, so they are skipped on replay
(`applied`): features are never counted twice, and scores after a restart equal those without.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finrisk.errors import FinriskError
from finrisk.features import OnlineFeatures
from finrisk.serving.bridge.dedup import RecentIds
from finrisk.serving.bridge.tx_merchants import TxMerchants
from finrisk.transactions import TxColumns

Matrix = npt.NDArray[np.float64]

SOURCE_OFFSET_HEADER = "finrisk.source.offset"
# Marks a user's merchant-placement record (tx_merchants.py), key MERCHANT_KEY_PREFIX + user:
# the header, not the key, tells it apart, since a user id may itself start with the prefix.
KIND_HEADER = "finrisk.state.kind"
MERCHANT_KIND = b"merchants"
MERCHANT_KEY_PREFIX = b"merchant:"
NS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    key: bytes
    value: bytes | None  # None: a tombstone (the user's state was dropped)
    partition: int
    source_offset: int
    kind: bytes | None = None  # MERCHANT_KIND, or None for a user's features

    @property
    def headers(self) -> list[tuple[str, str | bytes | None]]:
        headers: list[tuple[str, str | bytes | None]] = [
            (SOURCE_OFFSET_HEADER, str(self.source_offset).encode())
        ]
        if self.kind is not None:
            headers.append((KIND_HEADER, self.kind))
        return headers


class StateStore:
    """OnlineFeatures plus the input position each user's state has reached."""

    def __init__(self, dedup_window_s: float = 86_400.0, dedup_max_ids: int = 1_000) -> None:
        self.features = OnlineFeatures()
        self.recent = RecentIds(round(dedup_window_s * NS_PER_SECOND), dedup_max_ids)
        self._position: dict[str, tuple[int, int]] = {}
        # The highest input offset any user's state includes, per partition: messages above it
        # are new to every user, and need no check each.
        self._highest: dict[int, int] = {}
        self._dirty: set[str] = set()
        # Set when the served detector reads merchant risk (merchant_risk.py).
        self.merchants: TxMerchants | None = None

    def __len__(self) -> int:
        return len(self._position)

    def applied(self, user_id: str, partition: int, offset: int) -> bool:
        """Whether the user's state already includes the input message at (partition, offset)."""
        position = self._position.get(user_id)
        return position is not None and position[0] == partition and offset <= position[1]

    def may_include(self, positions: Sequence[tuple[int, int]]) -> bool:
        """Whether some user's state may include one of these input positions (False: none
        does; True: ask `applied` of each). Only a restored state is ever ahead of the input."""
        highest = self._highest
        return bool(highest) and any(
            offset <= highest.get(partition, -1) for partition, offset in positions
        )

    def apply(self, txs: TxColumns, positions: Sequence[tuple[int, int]]) -> tuple[Matrix, Matrix]:
        """Add transactions (in arrival order, each from its input (partition, offset)) to
        their users' states: a row each of TRANSACTION_FEATURES, and of its user's
        USER_FEATURES after it (`OnlineFeatures.observe_columns`)."""
        matrices = self.features.observe_columns(txs)
        position, dirty = self._position, self._dirty
        for user, at in zip(txs.user_id, positions, strict=True):
            position[user] = at
            dirty.add(user)
        self._raise_highest({partition: offset for partition, offset in positions})
        return matrices

    def _raise_highest(self, offsets: dict[int, int]) -> None:
        highest = self._highest
        for partition, offset in offsets.items():
            if offset > highest.get(partition, -1):
                highest[partition] = offset

    def changelog(self) -> list[ChangelogRecord]:
        """A record for each user changed since the last `mark_clean`."""
        users = list(self._dirty)
        encode = self.recent.encode
        records = [
            ChangelogRecord(user.encode(), b"%b\n%b" % (encode(user), saved), *self._position[user])
            for user, saved in zip(users, self.features.saved_states(users), strict=True)
        ]
        merchants = self.merchants
        if merchants is not None:
            records.extend(
                ChangelogRecord(
                    MERCHANT_KEY_PREFIX + user.encode(),
                    merchants.saved_state(user),
                    *self._position[user],
                    kind=MERCHANT_KIND,
                )
                for user in merchants.dirty()
                if user in self._position
            )
        return records

    def mark_clean(self) -> None:
        self._dirty.clear()
        if self.merchants is not None:
            self.merchants.mark_clean()

    def restore(
        self,
        key: bytes,
        value: bytes | None,
        partition: int,
        headers: Sequence[tuple[str, str | bytes | None]],
    ) -> None:
        """Apply one changelog record: a user's record replaces one of an earlier input offset
        (records come in the order written; a stale one can follow a newer one)."""
        offset, kind = None, None
        for name, raw in headers:
            if name == SOURCE_OFFSET_HEADER and raw is not None:
                offset = int(raw)
            elif name == KIND_HEADER:
                kind = raw.encode() if isinstance(raw, str) else raw
        if kind == MERCHANT_KIND:
            self._restore_merchants(key[len(MERCHANT_KEY_PREFIX) :].decode(), value, offset)
            return
        user = key.decode()
        if value is None:
            self._drop(user)
            return
        if offset is None:
            raise FinriskError(f"changelog record of user {user!r} has no {SOURCE_OFFSET_HEADER}")
        position = self._position.get(user)
        if position is not None and position[0] == partition and offset < position[1]:
            # Written after a later one: by a member that had lost the partition to the owner
            # of the later one. The state that includes more of the user's stream wins.
            return
        if value[:1] == b"[":  # the recent ids' line, then the features
            line, _, value = value.partition(b"\n")
            self.recent.restore(user, line)
        else:  # written before recent ids were kept
            self.recent.forget(user)
        self.features.restore(user, value)
        self._position[user] = (partition, offset)
        self._raise_highest({partition: offset})

    def _restore_merchants(self, user: str, value: bytes | None, offset: int | None) -> None:
        """A user's merchant-placement record; without merchant risk served, ignored. It
        follows the user's features record of the same checkpoint: one behind the user's
        restored position is a stale member's, and loses like its features record did."""
        if self.merchants is None:
            return
        position = self._position.get(user)
        if position is not None and offset is not None and offset < position[1]:
            return
        if value is None:
            self.merchants.forget(user)
        else:
            self.merchants.restore(user, value)

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget every user whose state comes from `partitions` (revoked); how many."""
        gone = set(partitions)
        users = [user for user, (partition, _) in self._position.items() if partition in gone]
        for user in users:
            self._drop(user)
        for partition in gone:
            self._highest.pop(partition, None)
        return len(users)

    def _drop(self, user: str) -> None:
        if self.merchants is not None:
            self.merchants.forget(user)
        self.features.forget(user)
        self.recent.forget(user)
        self._position.pop(user, None)
        self._dirty.discard(user)
