"""Online path of merchant risk (MERCHANT_FEATURES): state per merchant, updated by
transactions and label records in time order.

Fed transactions and label records interleaved by time (a label at its labelled_at, before a
transaction of the same instant; transactions in (timestamp, transaction_id) order), it gives
the batch path's values (finrisk.features.batch_merchants; the parity test proves it). The
state:
- per merchant, its transactions in the window (timestamp, transaction_id), oldest first;
- per merchant, the event times of its known frauds in the window, sorted;
- the transactions of the last window of the stream, by id, so that a label record (which
  names a transaction, not a merchant) finds its merchant and event time.

A label is ignored, never an error, when it cannot be placed (`observe_label` says why):
not a fraud outcome; its transaction is unknown (never seen, or older than the window, where
it could no longer count); its transaction was already counted as fraud; it claims to be
known before its transaction happened. A label that arrives before its transaction (a stream
out of time order) is such an unknown one: the batch path counts it, so only a time-ordered
stream has parity. Late transactions are taken as they come: their window counts are
relative to the merchant's newest, approximate like the user velocity windows.

State survives restarts through `saved_state(merchant) -> bytes` and `restore(merchant,
bytes)` (JSON), keyed by merchant like the user state is keyed by user.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.definitions import MERCHANT_FEATURES, MERCHANT_RISK_WINDOW_NS
from finrisk.features.formulas import merchant_formulas
from finrisk.labels import LabelRecord

MERCHANT_STATE_VERSION = 1

# observe_label's answers.
COUNTED = "counted"
NOT_FRAUD = "not a fraud outcome"
UNKNOWN_TRANSACTION = "unknown transaction (never seen, or older than the window)"
ALREADY_COUNTED = "transaction already counted as fraud"
BEFORE_TRANSACTION = "labelled before its transaction happened"


@dataclass
class _Merchant:
    window: deque[tuple[int, str]] = field(default_factory=deque)  # (timestamp, tx id)
    frauds: list[int] = field(default_factory=list)  # event times of known frauds, sorted


class OnlineMerchantRisk:
    """Incremental merchant risk for a streaming consumer (one process, one thread)."""

    def __init__(self) -> None:
        self._merchants: dict[str, _Merchant] = {}
        # tx id -> (merchant, timestamp) for the stream's last window, and the order to expire.
        self._recent: dict[str, tuple[str, int]] = {}
        self._expiry: deque[tuple[int, str]] = deque()
        self._counted: set[str] = set()
        self._clock = -(2**62)  # the newest transaction time seen

    def __len__(self) -> int:
        return len(self._merchants)

    def merchants(self) -> Iterator[str]:
        return iter(self._merchants)

    def observe_transaction(
        self, transaction_id: str, merchant: str, ts_ns: int
    ) -> dict[str, float]:
        """Add one transaction; return its MERCHANT_FEATURES."""
        merchant, tx = str(merchant), str(transaction_id)
        ts_ns = int(ts_ns)
        self._clock = max(self._clock, ts_ns)
        self._expire()
        state = self._merchants.setdefault(merchant, _Merchant())
        self._recent[tx] = (merchant, ts_ns)
        self._expiry.append((ts_ns, tx))
        window = state.window
        window.append((ts_ns, tx))
        cutoff = ts_ns - MERCHANT_RISK_WINDOW_NS
        while window and window[0][0] <= cutoff:
            window.popleft()
        frauds = state.frauds
        del frauds[: bisect.bisect_right(frauds, self._clock - MERCHANT_RISK_WINDOW_NS)]
        known = len(frauds) - bisect.bisect_right(frauds, ts_ns - MERCHANT_RISK_WINDOW_NS)
        values = merchant_formulas(float(known), float(len(window)))
        return dict(zip(MERCHANT_FEATURES, (float(v) for v in values), strict=True))

    def observe_label(self, record: LabelRecord) -> str:
        """Take one label record at its labelled_at; COUNTED, or why it was ignored."""
        if not record.is_fraud:
            return NOT_FRAUD
        tx = record.transaction_id
        if tx in self._counted:
            return ALREADY_COUNTED
        seen = self._recent.get(tx)
        if seen is None:
            return UNKNOWN_TRANSACTION
        merchant, event = seen
        if pd.Timestamp(record.labelled_at).value < event:
            return BEFORE_TRANSACTION
        self._counted.add(tx)
        bisect.insort(self._merchants[merchant].frauds, event)
        return COUNTED

    def _expire(self) -> None:
        cutoff = self._clock - MERCHANT_RISK_WINDOW_NS
        expiry, recent, counted = self._expiry, self._recent, self._counted
        while expiry and expiry[0][0] <= cutoff:
            _, tx = expiry.popleft()
            if tx in recent and recent[tx][1] <= cutoff:
                del recent[tx]
                counted.discard(tx)

    def saved_state(self, merchant: str) -> bytes:
        """The merchant's state as JSON: its window (with which of its transactions were
        counted as fraud) and its known frauds' event times."""
        state = self._merchants.get(str(merchant))
        if state is None:
            raise FinriskError(f"no transactions seen at merchant {merchant!r}")
        return orjson.dumps(
            {
                "version": MERCHANT_STATE_VERSION,
                "window": [[ts, tx, tx in self._counted] for ts, tx in state.window],
                "frauds": state.frauds,
            }
        )

    def restore(self, merchant: str, data: bytes) -> None:
        """Replace the merchant's state with one written by `saved_state`."""
        merchant = str(merchant)
        try:
            doc = orjson.loads(data)
            if doc.get("version") != MERCHANT_STATE_VERSION:
                raise FinriskError(
                    f"has version {doc.get('version')!r}; this finrisk reads version "
                    f"{MERCHANT_STATE_VERSION} only: drop it and replay"
                )
            window = [(int(ts), str(tx), bool(counted)) for ts, tx, counted in doc["window"]]
            frauds = sorted(int(ts) for ts in doc["frauds"])
        except FinriskError as exc:
            raise FinriskError(f"merchant state of {merchant!r} {exc}") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FinriskError(f"merchant state of {merchant!r} is unreadable: {exc}") from None
        old = self._merchants.get(merchant)
        if old is not None:
            for _, tx in old.window:
                if self._recent.get(tx, ("",))[0] == merchant:
                    del self._recent[tx]
                    self._counted.discard(tx)
        self._merchants[merchant] = _Merchant(deque((ts, tx) for ts, tx, _ in window), frauds)
        for ts, tx, counted in window:
            self._recent[tx] = (merchant, ts)
            self._expiry.append((ts, tx))
            if counted:
                self._counted.add(tx)
            self._clock = max(self._clock, ts)
        # Restored entries join the expiry queue out of order: keep it sorted by time.
        self._expiry = deque(sorted(self._expiry))

    def forget(self, merchant: str) -> None:
        """Drop the merchant's state (e.g. when a changelog tombstone arrives)."""
        old = self._merchants.pop(str(merchant), None)
        if old is not None:
            for _, tx in old.window:
                self._recent.pop(tx, None)
                self._counted.discard(tx)
