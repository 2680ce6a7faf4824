"""Where the owner's recent transactions happened: per user, transaction id -> (merchant, event
time) over the last MERCHANT_RISK_WINDOW_DAYS of the user's stream.

A label record names a transaction and its user, not its merchant. Only the owner of the
user's partition saw the transaction, so it alone can place a fraud label at its merchant
(fraud_placement.py); this is what it looks the transaction up in. A fraud older than the
window never counts at any transaction, so older entries are dropped.

It is per-user state like the features, so it travels the same way: a changelog record per
user changed since the last checkpoint (state.py, key `merchant:<user>`, marked by a header),
restored with the user on assignment, dropped with the user on revocation. Without it, a
restarted or new owner could not place the labels of transactions scored before it took over.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import orjson

from finrisk.errors import FinriskError
from finrisk.features.definitions import MERCHANT_RISK_WINDOW_NS


class TxMerchants:
    def __init__(self) -> None:
        # user -> transaction id -> (merchant, event time ns), in arrival order
        self._users: dict[str, dict[str, tuple[str, int]]] = {}
        self._dirty: set[str] = set()

    def __len__(self) -> int:
        return sum(map(len, self._users.values()))

    def observe(
        self,
        users: Sequence[str],
        tx_ids: Sequence[str],
        merchants: Sequence[object],
        ts_ns: Iterable[int],
    ) -> None:
        """Remember a batch's transactions; drop each user's entries out of the window."""
        touched: dict[str, int] = {}
        for user, tx, merchant, ts in zip(users, tx_ids, merchants, ts_ns, strict=True):
            self._users.setdefault(user, {})[str(tx)] = (str(merchant), int(ts))
            touched[user] = max(touched.get(user, int(ts)), int(ts))
        for user, newest in touched.items():
            mine = self._users[user]
            low = newest - MERCHANT_RISK_WINDOW_NS
            old = [tx for tx, (_, ts) in mine.items() if ts <= low]
            for tx in old:
                del mine[tx]
        self._dirty.update(touched)

    def lookup(self, user: str, tx: str) -> tuple[str, int] | None:
        mine = self._users.get(user)
        return None if mine is None else mine.get(tx)

    def dirty(self) -> Iterator[str]:
        return iter(self._dirty)

    def mark_clean(self) -> None:
        self._dirty.clear()

    def saved_state(self, user: str) -> bytes:
        mine = self._users.get(user, {})
        return orjson.dumps([[tx, merchant, ts] for tx, (merchant, ts) in mine.items()])

    def restore(self, user: str, data: bytes) -> None:
        try:
            entries = {str(tx): (str(m), int(ts)) for tx, m, ts in orjson.loads(data)}
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise FinriskError(f"merchant state of user {user!r} is unreadable: {exc}") from None
        self._users[user] = entries
        self._dirty.discard(user)

    def forget(self, user: str) -> None:
        self._users.pop(user, None)
        self._dirty.discard(user)
