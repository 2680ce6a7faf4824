"""Online path: the statistics of `finrisk.features.formulas`, kept incrementally per user.

`OnlineFeatures` is what callers use (the streaming bridge, the benchmarks); the work is done in

- `online_arrays`: the array types they share (the input columns, `TxColumns`, come checked
  from the transaction contract, finrisk.transactions);
- `online_state`: every user's running statistics in columns, a column ("slot") per user;
- `online_pass`: a micro-batch applied in rounds, and each transaction's features out;
- `online_stats`: a round's arithmetic on the statistics, and their reading as `UserStats`;
- `online_windows`: the velocity windows, the one per-transaction loop;
- `online_saved_state`: a user's state as bytes and back (its saved state).

A stream fed in each user's canonical order (timestamp, transaction_id) gives the batch path's
values; the parity test proves it. A transaction arriving with an earlier timestamp than its
user's previous one is processed as it comes: its gap counts as 0 and the windows expire
relative to the newest timestamp seen for that user, so a late message is never lost but its
velocity counts are approximate. The recent (time-decayed) sums stay exact: a late
transaction enters them with its own age's weight.

Every value of a transaction depends on its user's history only, never on which other
transactions share its batch: a test proves the features bit for bit equal whatever the batch
boundaries, which is what makes a restarted consumer score as an uninterrupted one.

State survives restarts through `saved_state(user_id) -> bytes` and `restore(user_id, bytes)`
(a JSON header, then the numbers in binary), keyed by user, so the streaming bridge can keep
a compacted changelog topic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from finrisk.features import online_pass, online_saved_state
from finrisk.features.definitions import TRANSACTION_FEATURES, USER_FEATURES
from finrisk.features.formulas import user_formulas
from finrisk.features.online_arrays import Matrix
from finrisk.features.online_state import OnlineState
from finrisk.features.online_stats import user_stats
from finrisk.transactions import TxColumns, transaction_columns


class OnlineFeatures:
    """Incremental per-user feature state for a streaming consumer (one process, one thread)."""

    def __init__(self) -> None:
        self._state = OnlineState()

    def __len__(self) -> int:
        return len(self._state.slots)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._state.slots

    def users(self) -> Iterator[Any]:
        """The ids of the users with state."""
        return iter(self._state.slots)

    def update(self, tx: Mapping[str, Any]) -> dict[str, float]:
        """Add one transaction to its user's state; return its TRANSACTION_FEATURES."""
        tx_matrix, _ = self.observe([tx])
        return dict(zip(TRANSACTION_FEATURES, tx_matrix[0].tolist(), strict=True))

    def observe(self, txs: Sequence[Mapping[str, Any]]) -> tuple[Matrix, Matrix]:
        """Add transactions (canonical mappings, in arrival order) to their users' states; see
        `observe_columns`."""
        return self.observe_columns(transaction_columns(txs))

    def observe_columns(self, columns: TxColumns) -> tuple[Matrix, Matrix]:
        """Add transactions, in arrival order, to their users' states.

        Returns two matrices with a row per transaction: its TRANSACTION_FEATURES, and its
        user's USER_FEATURES as of (and including) it. The columns come checked
        (finrisk.transactions); `observe` checks mappings before any state changes.
        """
        return online_pass.observe_columns(self._state, columns)

    def user_features(self, user_id: Any) -> dict[str, float]:
        """USER_FEATURES of everything seen so far for `user_id`."""
        return dict(zip(USER_FEATURES, self.user_values(user_id), strict=True))

    def user_values(self, user_id: Any) -> tuple[float, ...]:
        """As `user_features`, but the values in USER_FEATURES order, without names."""
        state = self._state
        slot = state.slot(user_id)
        index = np.array([slot])
        stats = user_stats(
            state.sums[:, index],
            state.times[:, index],
            np.array([float(len(state.merchants[slot]))]),
            state.category_spend[index].max(axis=1),
            list(state.category_counts[index][:, state.counted].T),
        )
        return tuple(online_pass.feature_matrix(user_formulas(stats), 1)[0].tolist())

    def saved_state(self, user_id: Any) -> bytes:
        """The user's whole state as bytes, for a changelog keyed by user (see `saved_states`)."""
        return self.saved_states([user_id])[0]

    def saved_states(self, user_ids: Sequence[Any]) -> list[bytes]:
        """`saved_state` of each user, the numbers of all of them read at once (the format:
        `finrisk.features.online_saved_state.saved_states`)."""
        return online_saved_state.saved_states(self._state, user_ids)

    def restore(self, user_id: Any, data: bytes) -> None:
        """Replace the user's state with one written by `saved_state`."""
        online_saved_state.restore(self._state, user_id, data)

    def forget(self, user_id: Any) -> None:
        """Drop the user's state (e.g. when a changelog tombstone arrives)."""
        self._state.forget(user_id)
