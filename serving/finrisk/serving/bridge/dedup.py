"""One transaction, one score: the transaction ids each user sent lately, to catch a repeat.

An upstream producer that retries (a timeout after the broker had written the message) sends
the same transaction twice; scored twice, it would also count twice in its user's velocity and
sums. Each user's ids are remembered for `window_ns` of event time behind the user's latest
transaction to arrive (the last `ALWAYS_KEPT` whatever their age), at most `max_per_user` of
them (the oldest go first), and travel with the user's state through the changelog, so a repeat
is caught across restarts and rebalances.

Ids are per user: a transaction id seen under another user is a different transaction here (a
retry carries the same key and value, hence the same user).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import orjson

from finrisk.errors import FinriskError

# A user's last few ids are kept whatever their age: checking each user's window after every
# batch cost as much as remembering the ids, and the feature state keeps every user anyway.
ALWAYS_KEPT = 8


class RecentIds:
    """Per user: transaction id -> event time (ns), in arrival order."""

    def __init__(self, window_ns: int, max_per_user: int) -> None:
        self.window_ns = window_ns
        self.max_per_user = max_per_user
        self._ids: dict[str, dict[str, int]] = {}

    @property
    def enabled(self) -> bool:
        return self.window_ns > 0

    def repeats(
        self, users: Sequence[str], tx_ids: Sequence[str], stamps_ns: npt.NDArray[np.int64]
    ) -> list[int]:
        """Positions of transactions already seen (earlier, or earlier in this batch); the
        others are remembered. Call in arrival order, for transactions about to be counted."""
        if not self.enabled:
            return []
        ids_of = self._ids
        kept = min(ALWAYS_KEPT, self.max_per_user)
        repeated: list[int] = []
        grown: list[str] = []
        for i, (user, tx_id, ns) in enumerate(zip(users, tx_ids, stamps_ns.tolist(), strict=True)):
            ids = ids_of.get(user)
            if ids is None:
                ids_of[user] = {tx_id: ns}
            elif tx_id in ids:
                repeated.append(i)
            else:
                ids[tx_id] = ns
                if len(ids) > kept:
                    grown.append(user)
        window, most = self.window_ns, self.max_per_user
        for user in set(grown):
            times = ids_of[user].values()
            # The window ends at the user's latest arrival (their newest transaction but for
            # a late one): nothing to forget while the oldest is within it.
            if len(times) > most or next(iter(times)) < next(reversed(times)) - window:
                self._expire(ids_of[user])
        return repeated

    def _expire(self, ids: dict[str, int]) -> None:
        cutoff = next(reversed(ids.values())) - self.window_ns
        excess = len(ids) - self.max_per_user
        old = []
        for tx_id, ns in ids.items():  # arrival order: the oldest first but for late ones
            if excess <= 0 and ns >= cutoff:
                break
            old.append(tx_id)
            excess -= 1
        for tx_id in old:
            del ids[tx_id]

    def encode(self, user: str) -> bytes:
        """The user's ids as one JSON line: [[id, event ns], ...] in arrival order."""
        return orjson.dumps(list(self._ids.get(user, {}).items()))

    def restore(self, user: str, line: bytes) -> None:
        try:
            pairs = orjson.loads(line)
            ids = {str(tx_id): int(ns) for tx_id, ns in pairs}
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise FinriskError(f"recent transaction ids of user {user!r}: {exc}") from None
        self.forget(user)
        if ids:
            self._ids[user] = ids

    def forget(self, user: str) -> None:
        self._ids.pop(user, None)

    def __len__(self) -> int:
        return sum(map(len, self._ids.values()))
