"""Known frauds per merchant, as records of the `merchant-frauds` topic, and the as-of count
the served detector reads (`log_merchant_recent_frauds`, MERCHANT_FEATURES).

A record says: the transaction `transaction_id` at `merchant`, which happened at
`event_time_ns`, was confirmed fraud at `labelled_at_ns` (its earliest fraud label). The
owner of the transaction's user places it (it alone knows the transaction's merchant) and
every bridge instance reads all of them, so each counts the merchant's frauds globally.

Key: `[merchant, transaction_id]` as JSON, one per fraud, because the topic is compacted and
compaction keeps only the last record per key: a key of the merchant alone would keep one
fraud per merchant. JSON, not `merchant|transaction_id`: a `|` inside a merchant's name would
make two frauds share a key.

The count is as-of, like the batch path's (finrisk.features.batch_merchants): at a transaction
at time t at merchant m, the frauds at m with event time in (t - MERCHANT_RISK_WINDOW_DAYS, t]
and labelled_at <= t. A record that arrives early is therefore not counted early: what a
record changes is only when the reader learns it, never which transactions it counts at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.batch_merchants import earliest_fraud_labels
from finrisk.features.definitions import MERCHANT_RISK_WINDOW_NS
from finrisk.labels import MAX_ID_CHARS, LabelRecord
from finrisk.schema import MERCHANT, TIMESTAMP, TRANSACTION_ID
from finrisk.timestamps import series_to_ns

_FIELDS = ("merchant", "transaction_id", "event_time_ns", "labelled_at_ns")
# Frauds are kept this long past the window behind the newest transaction seen, so that a
# transaction arriving late (another partition lagging behind) still finds its window's.
EXPIRY_SLACK_NS = MERCHANT_RISK_WINDOW_NS


class MerchantFraudError(FinriskError):
    """A merchant-frauds record that cannot be taken; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class MerchantFraud:
    merchant: str
    transaction_id: str
    event_time_ns: int
    labelled_at_ns: int  # the earliest fraud label's labelled_at

    @property
    def key(self) -> bytes:
        return orjson.dumps([self.merchant, self.transaction_id])

    @property
    def value(self) -> bytes:
        return orjson.dumps({name: getattr(self, name) for name in _FIELDS})


def decode(value: bytes | None) -> MerchantFraud:
    """A record's value as a MerchantFraud; MerchantFraudError naming what is wrong."""
    if value is None:
        raise MerchantFraudError("record has no value")
    try:
        doc: Any = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise MerchantFraudError(f"value is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MerchantFraudError(f"value is a JSON {type(doc).__name__}, not an object")
    missing = [name for name in _FIELDS if name not in doc]
    if missing:
        raise MerchantFraudError(f"value lacks the field(s) {missing}")
    for name in ("merchant", "transaction_id"):
        text = doc[name]
        if not isinstance(text, str) or not text or len(text) > MAX_ID_CHARS:
            raise MerchantFraudError(
                f"{name} must be a non-empty string of at most {MAX_ID_CHARS} characters, "
                f"got {text!r:.80}"
            )
    for name in ("event_time_ns", "labelled_at_ns"):
        # bool is an int in Python, never a time here.
        if not isinstance(doc[name], int) or isinstance(doc[name], bool):
            raise MerchantFraudError(f"{name} must be an integer (ns since the epoch)")
    if doc["labelled_at_ns"] < doc["event_time_ns"]:
        raise MerchantFraudError("labelled_at_ns is before event_time_ns")
    return MerchantFraud(*(doc[name] for name in _FIELDS))


def merchant_frauds_of(
    transactions: pd.DataFrame, labels: Iterable[LabelRecord]
) -> list[MerchantFraud]:
    """The frauds the batch path counts, placed at their merchants (what the owners of the
    users' partitions publish): each transaction once, from its earliest fraud label; a
    label for a transaction not in the table, or known before its transaction, is left out."""
    known = earliest_fraud_labels(labels)
    if not known:
        return []
    ids = transactions[TRANSACTION_ID].astype(str)
    first = ~ids.duplicated()  # the batch path joins a label to an id's first row
    hit = ids[first & ids.isin(known.keys())]
    rows = transactions.loc[hit.index]
    stamps = series_to_ns(rows[TIMESTAMP], TIMESTAMP)
    out = []
    for tx, merchant, event in zip(hit, rows[MERCHANT].astype(str), stamps, strict=True):
        if known[tx] >= event:
            out.append(MerchantFraud(merchant, tx, int(event), known[tx]))
    return out


class KnownFrauds:
    """The frauds read so far, per merchant, and their as-of count at a transaction."""

    def __init__(self) -> None:
        # merchant -> transaction id -> (event time, labelled at), in ns
        self._frauds: dict[str, dict[str, tuple[int, int]]] = {}
        self._clock = -(2**62)  # the newest transaction time counted at

    def __len__(self) -> int:
        return sum(map(len, self._frauds.values()))

    def add(self, fraud: MerchantFraud) -> bool:
        """Take a fraud; False when it changes nothing (known already, as early or earlier)."""
        mine = self._frauds.setdefault(fraud.merchant, {})
        seen = mine.get(fraud.transaction_id)
        if seen is not None and seen[1] <= fraud.labelled_at_ns:
            return False
        mine[fraud.transaction_id] = (fraud.event_time_ns, fraud.labelled_at_ns)
        return True

    def count(self, merchant: str, ts_ns: int) -> int:
        mine = self._frauds.get(merchant)
        if not mine:
            return 0
        low = ts_ns - MERCHANT_RISK_WINDOW_NS
        return sum(1 for event, at in mine.values() if event > low and at <= ts_ns)

    def counts(
        self, merchants: Sequence[str], ts_ns: Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """The count at each transaction (merchant, time); then frauds too old for any later
        transaction are dropped."""
        frauds = self._frauds
        out = np.zeros(len(merchants))
        for i, (merchant, ts) in enumerate(zip(merchants, ts_ns, strict=True)):
            if merchant in frauds:
                out[i] = self.count(merchant, int(ts))
        if len(ts_ns):
            self._clock = max(self._clock, int(max(ts_ns)))
            self._expire()
        return out

    def _expire(self) -> None:
        low = self._clock - MERCHANT_RISK_WINDOW_NS - EXPIRY_SLACK_NS
        for merchant in list(self._frauds):
            mine = self._frauds[merchant]
            old = [tx for tx, (event, _) in mine.items() if event <= low]
            for tx in old:
                del mine[tx]
            if not mine:
                del self._frauds[merchant]
