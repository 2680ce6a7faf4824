"""The online path's velocity windows: per user, the count of transactions in each window, the
debit sum in the summed ones and the first visits to a merchant in each of NEW_MERCHANT_WINDOWS,
the one per-transaction loop of a micro-batch.

Each user's windows are one list of (timestamp, debit total before, distinct merchants before)
in arrival order with a start per window. A transaction arriving with an earlier timestamp than
its user's previous one expires the windows relative to the newest timestamp seen for that
user, so a late message is never lost but its velocity counts are approximate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from finrisk.features.definitions import NEW_MERCHANT_WINDOWS, SUM_WINDOWS, WINDOWS
from finrisk.features.online_arrays import Floats, Ints

# Per window: its length, and whether its debit sum is a feature (in WINDOWS order, which
# SUM_WINDOWS follows; a test holds it to that). The windows after those are NEW_MERCHANT_WINDOWS'
# (in their order, so a saved state's window starts of an older version are a prefix of these),
# whose transactions are not counted, only their first visits to merchants.
COUNTED: int = len(WINDOWS)
WINDOW_LENGTHS: tuple[int, ...] = (
    *(length for _, length in WINDOWS),
    *(length for _, length in NEW_MERCHANT_WINDOWS),
)
NEW_MERCHANTS: tuple[int, ...] = tuple(range(COUNTED, len(WINDOW_LENGTHS)))
_SUMMED: tuple[int, ...] = tuple(
    k for k, (suffix, _) in enumerate(WINDOWS) if suffix in SUM_WINDOWS
)
LONGEST = WINDOW_LENGTHS.index(max(WINDOW_LENGTHS))
# New-merchant windows of a counted window's length (the 24-hour one): index -> that window's.
_SAME_AS_COUNTED: dict[int, int] = {
    k: WINDOW_LENGTHS[:COUNTED].index(WINDOW_LENGTHS[k])
    for k in NEW_MERCHANTS
    if WINDOW_LENGTHS[k] in WINDOW_LENGTHS[:COUNTED]
}
# A window list drops its expired head once this many entries have expired from every window.
_TRIM_AFTER = 64


class VelocityWindows:
    """A user's velocity windows: the (timestamp, debit total before, distinct merchants
    before) of their recent transactions in arrival order, and where each window starts in
    them. A window drops its head while the head expired against the newest timestamp; the
    newest transaction itself never expires, so a start never passes the end."""

    __slots__ = ("cums", "merchants", "stamps", "starts")

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.cums: list[float] = []
        self.merchants: list[float] = []
        self.starts = [0] * len(WINDOW_LENGTHS)


def window_stats(
    windows: list[VelocityWindows],
    slots: Any,
    stamps: Ints,
    clocks: Ints,
    cum_before: Floats,
    cum_after: Floats,
    merchants_before: Floats,
    merchants_after: Floats,
) -> tuple[list[Floats], list[Floats], list[Floats]]:
    """Counts in each of WINDOWS, debit sums in the summed ones and first visits to a
    merchant in each of NEW_MERCHANT_WINDOWS, per transaction, each added to the window of its
    user's slot (round order keeps each user's transactions in arrival order). `clocks` is each
    user's newest timestamp so far, which the windows expire against; `cum_before`/`cum_after`
    the user's debit total before and after, `merchants_before`/`merchants_after` their
    number of distinct merchants (a first visit adds one)."""
    counts: list[list[int]] = [[] for _ in range(COUNTED)]
    new_merchants: list[list[float]] = [[] for _ in NEW_MERCHANTS]
    sums: list[list[float]] = [[] for _ in _SUMMED]
    # Each column's append bound once: this loop runs per transaction.
    count_into = [
        (k, length, column.append)
        for k, (length, column) in enumerate(zip(WINDOW_LENGTHS[:COUNTED], counts, strict=True))
    ]
    # A new-merchant window as long as a counted one starts where that one does (same length,
    # same clock): its start is copied, not searched for again.
    new_scanned = [
        (k, WINDOW_LENGTHS[k], column.append)
        for k, column in zip(NEW_MERCHANTS, new_merchants, strict=True)
        if k not in _SAME_AS_COUNTED
    ]
    new_copied = [
        (k, _SAME_AS_COUNTED[k], column.append)
        for k, column in zip(NEW_MERCHANTS, new_merchants, strict=True)
        if k in _SAME_AS_COUNTED
    ]
    sum_into = [(k, column.append) for k, column in zip(_SUMMED, sums, strict=True)]
    rows = zip(
        slots.tolist(),
        stamps.tolist(),
        clocks.tolist(),
        cum_before.tolist(),
        cum_after.tolist(),
        merchants_before.tolist(),
        merchants_after.tolist(),
        strict=True,
    )
    for slot, ts, clock, before, after, known_before, known_after in rows:
        window = windows[slot]
        entries, cums, known, starts = window.stamps, window.cums, window.merchants, window.starts
        entries.append(ts)
        cums.append(before)
        known.append(known_before)
        end = len(entries)
        for k, length, count in count_into:
            cutoff = clock - length
            j = starts[k]
            if entries[j] <= cutoff:
                # Not bisect: a late transaction leaves the entries out of time order.
                j += 1
                while entries[j] <= cutoff:
                    j += 1
                starts[k] = j
            count(end - j)
        for k, total in sum_into:
            total(after - cums[starts[k]])
        for k, length, count_new in new_scanned:
            cutoff = clock - length
            j = starts[k]
            while entries[j] <= cutoff:
                j += 1
            starts[k] = j
            count_new(known_after - known[j])
        for k, same, count_new in new_copied:
            j = starts[k] = starts[same]
            count_new(known_after - known[j])
        expired = starts[LONGEST]
        if expired > _TRIM_AFTER:
            del entries[:expired], cums[:expired], known[:expired]
            window.starts = [start - expired for start in starts]
    return (
        [np.array(column, dtype=np.float64) for column in counts],
        [np.array(column, dtype=np.float64) for column in sums],
        [np.array(column, dtype=np.float64) for column in new_merchants],
    )
