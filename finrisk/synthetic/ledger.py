"""Column-wise store of generated transactions, in integer cents so balances add up exactly.

`pattern` is generator-only ground truth that no output column carries: which legitimate
look-alike of fraud a row belongs to (finrisk.synthetic.hard; 0 for everything else).
"""

from __future__ import annotations

import numpy as np

FIELDS = (
    "user", "second", "cents", "credit", "category", "merchant", "channel", "fraud", "pattern",
)  # fmt: skip
_DTYPES = {
    "user": np.int64,
    "second": np.int64,
    "cents": np.int64,
    "credit": np.bool_,
    "category": np.int8,
    "merchant": np.int64,
    "channel": np.int8,
    "fraud": np.int8,
    "pattern": np.int8,
}


class Ledger:
    def __init__(self, n_users: int) -> None:
        self.n_users = n_users
        self._parts: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
        self._since = 0  # parts added since the last net_since_last() call start here

    def add(
        self,
        user: np.ndarray,
        second: np.ndarray,
        amount: np.ndarray,
        *,
        credit: bool,
        category: np.ndarray | int,
        merchant: np.ndarray | int,
        channel: np.ndarray | int,
        fraud: int = 0,
        pattern: int = 0,
    ) -> None:
        n = len(user)
        if n == 0:
            return
        cents = np.maximum(np.round(np.asarray(amount) * 100.0), 1)
        values = {
            "user": user,
            "second": np.floor(second),
            "cents": cents,
            "credit": credit,
            "category": category,
            "merchant": merchant,
            "channel": channel,
            "fraud": fraud,
            "pattern": pattern,
        }
        for field, value in values.items():
            self._parts[field].append(
                np.broadcast_to(np.asarray(value).astype(_DTYPES[field]), (n,))
            )

    def net_since_last(self) -> np.ndarray:
        """Per-user signed cents added since the previous call (credits positive)."""
        users = self._parts["user"][self._since :]
        if not users:
            return np.zeros(self.n_users)
        signed = [
            np.where(credit, cents, -cents)
            for credit, cents in zip(
                self._parts["credit"][self._since :],
                self._parts["cents"][self._since :],
                strict=True,
            )
        ]
        self._since = len(self._parts["user"])
        return np.bincount(
            np.concatenate(users), weights=np.concatenate(signed), minlength=self.n_users
        )

    def columns(self) -> dict[str, np.ndarray]:
        return {
            f: (np.concatenate(p) if p else np.zeros(0, dtype=_DTYPES[f]))
            for f, p in self._parts.items()
        }
