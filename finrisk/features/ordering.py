"""The per-user order of transactions that every feature is causal in.

A user's transactions are ordered by (timestamp, transaction_id): timestamps first, and ties in
timestamp broken by transaction id (string order), so that two transactions in the same
nanosecond still have a defined "before". Causal means a transaction's features use the
user's transactions up to and including itself in that order. Across users the order does
not matter; the online path must be fed each user's transactions in this order to agree with
the batch path.
"""

from __future__ import annotations

import numpy as np

ORDER_KEYS: tuple[str, str, str] = ("user_id", "timestamp", "transaction_id")


def canonical_order(
    user_codes: np.ndarray, timestamps_ns: np.ndarray, transaction_ids: np.ndarray
) -> np.ndarray:
    """Indices that sort rows by (user, timestamp, transaction_id).

    Users are compared by their integer code; transaction ids are only compared where a user
    has several transactions at the same timestamp (rare), which keeps the sort on integers.
    """
    order = np.lexsort((timestamps_ns, user_codes))
    users = user_codes[order]
    stamps = timestamps_ns[order]
    same = (users[1:] == users[:-1]) & (stamps[1:] == stamps[:-1])
    if not same.any():
        return order
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    tied_rows = order[tied]
    # Rank only the tied rows' ids; untied rows keep rank 0, which cannot reorder them because
    # their (user, timestamp) pair is unique.
    ids = np.asarray(transaction_ids, dtype=object)[tied_rows].astype(str)
    rank = np.zeros(len(order), dtype=np.int64)
    rank[tied_rows[np.argsort(ids, kind="stable")]] = np.arange(1, len(tied_rows) + 1)
    return np.lexsort((rank, timestamps_ns, user_codes))
