"""The online state of a user as bytes and back, for the streaming bridge's changelog.

State survives restarts through these saved states (a JSON header, then the numbers in binary),
keyed by user, so the streaming bridge can keep a compacted changelog topic. ("Snapshot" is
kept for `finrisk.features.snapshots`: user features as of cut-off days, for training.)
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson

from finrisk.errors import FinriskError
from finrisk.features.definitions import WINDOWS
from finrisk.features.online_arrays import Floats, Ints
from finrisk.features.online_state import SUM_FIELDS, TIME_FIELDS, OnlineState
from finrisk.features.online_windows import LONGEST, WINDOW_LENGTHS, VelocityWindows

# 5: two more window starts, the 3-day and the 24-hour new-merchant windows' (the last two of
# `window_starts`; 4's starts are the first ones of 5's). 4: the windows also hold the user's
# distinct merchants before each entry (the new-merchant window). 3: the numbers in binary
# after a JSON header. 2 (JSON only) held the statistics of 3; 1 lacked some.
SAVED_STATE_VERSION = 5
# Read and upgraded (_read_saved_state, _upgraded_starts), so that a bridge upgraded in place
# restores the states its predecessor wrote instead of stopping. Any other version is refused:
# replay the user's transactions (docs/bridge.md, "Upgrading").
UPGRADED_VERSIONS = (3, 4)
_LAST_TS = TIME_FIELDS.index("last_ts")
# The window starts each version kept: the velocity windows', then the new-merchant ones'.
_STARTS_KEPT = {3: len(WINDOWS), 4: len(WINDOWS) + 1, SAVED_STATE_VERSION: len(WINDOW_LENGTHS)}


def saved_states(state: OnlineState, user_ids: Sequence[Any]) -> list[bytes]:
    """Each user's whole state as bytes, the numbers of all of them read at once.

    A saved state is a JSON header (version, category names, merchants, window starts and
    length), a newline, then the numbers as little-endian float64/int64: the statistics,
    the timestamps, the per-category counts and spend, the window timestamps, debit
    totals and merchant counts. Written as JSON text the numbers cost ~5x as much, and a checkpoint
    saves every user changed in the interval.
    """
    slots = [state.slot(user) for user in user_ids]
    categories = list(state.categories)
    n = len(slots)
    if n == 0:
        return []
    numbers = np.concatenate(
        [
            state.sums[:, slots].T.astype("<f8").view(np.uint8).reshape(n, -1),
            state.times[:, slots].T.astype("<i8").view(np.uint8).reshape(n, -1),
            state.category_counts[slots].astype("<f8").view(np.uint8).reshape(n, -1),
            state.category_spend[slots].astype("<f8").view(np.uint8).reshape(n, -1),
        ],
        axis=1,
    ).tobytes()
    width = len(numbers) // n
    documents = []
    for i, slot in enumerate(slots):
        window = state.windows[slot]
        first = window.starts[LONGEST]
        stamps = array("q", window.stamps[first:])
        cums = array("d", window.cums[first:])
        known = array("d", window.merchants[first:])
        header = {
            "version": SAVED_STATE_VERSION,
            "categories": categories,
            "merchants": list(state.merchants[slot]),
            "window_starts": [start - first for start in window.starts],
            "window_entries": len(stamps),
        }
        if sys.byteorder != "little":
            stamps.byteswap()
            cums.byteswap()
            known.byteswap()
        documents.append(
            b"".join(
                (
                    orjson.dumps(header),
                    b"\n",
                    numbers[i * width : (i + 1) * width],
                    stamps.tobytes(),
                    cums.tobytes(),
                    known.tobytes(),
                )
            )
        )
    return documents


def restore(state: OnlineState, user_id: Any, data: bytes) -> None:
    """Replace the user's state with one written by `saved_states`."""
    try:
        saved = _read_saved_state(data)
    except FinriskError as exc:
        raise FinriskError(f"feature state of user {user_id!r} {exc}") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FinriskError(f"feature state of user {user_id!r} is unreadable: {exc}") from None
    slot = state.slots.get(user_id)
    if slot is None:
        slot = state.allocate(user_id)
    for name in saved.categories:
        state.categories.setdefault(name, len(state.categories))
    state.fit_arrays()
    state.reset_slots([slot])
    state.sums[:, slot] = saved.sums
    state.times[:, slot] = saved.times
    columns = [state.categories[name] for name in saved.categories]
    state.category_counts[slot, columns] = saved.category_counts
    state.category_spend[slot, columns] = saved.category_spend
    state.merchants[slot] = saved.merchants
    state.windows[slot] = saved.windows


class _SavedState(NamedTuple):
    sums: Floats
    times: Ints
    categories: list[str]
    category_counts: Floats
    category_spend: Floats
    merchants: set[Any]
    windows: VelocityWindows


def _read_saved_state(data: bytes) -> _SavedState:
    """A saved state's parts; FinriskError (or a decoding error) says what is wrong."""
    end = data.find(b"\n")
    header = orjson.loads(data[:end] if end >= 0 else data)
    version = header.get("version")
    if version != SAVED_STATE_VERSION and version not in UPGRADED_VERSIONS:
        readable = ", ".join(str(v) for v in (SAVED_STATE_VERSION, *UPGRADED_VERSIONS))
        raise FinriskError(
            f"has saved-state version {version!r}; this finrisk reads versions {readable} "
            "(a state of another version lacks statistics the features need or is laid out "
            "otherwise: drop it and replay the user's transactions)"
        )
    categories = [str(name) for name in header["categories"]]
    entries = int(header["window_entries"])
    starts = [int(start) for start in header["window_starts"]]
    # Per window entry: its timestamp and debit total before, and (from version 4) the user's
    # distinct merchants before it.
    sizes = [len(SUM_FIELDS), len(TIME_FIELDS), len(categories), len(categories), entries, entries]
    if version >= 4:
        sizes.append(entries)
    body = memoryview(data)[end + 1 :]
    if end < 0 or len(body) != 8 * sum(sizes):
        raise FinriskError("is unreadable: its numbers are cut short or too long")
    if len(starts) != _STARTS_KEPT[version] or not all(0 <= s <= entries for s in starts):
        raise FinriskError("has the wrong windows")
    offsets = np.cumsum([0, *sizes]) * 8
    blocks = [body[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    merchants = set(header["merchants"])
    times = np.frombuffer(blocks[1], dtype="<i8")
    window = VelocityWindows()
    window.stamps = np.frombuffer(blocks[4], dtype="<i8").tolist()
    window.cums = np.frombuffer(blocks[5], dtype="<f8").tolist()
    if version >= 4:
        window.merchants = np.frombuffer(blocks[6], dtype="<f8").tolist()
    else:
        # No per-entry merchant counts: each entry gets the user's present count, so the first
        # visits before the upgrade are not counted (new_merchants_* low for up to a week).
        window.merchants = [float(len(merchants))] * entries
    window.starts = _upgraded_starts(starts, window.stamps, int(times[_LAST_TS]))
    return _SavedState(
        sums=np.frombuffer(blocks[0], dtype="<f8"),
        times=np.frombuffer(blocks[1], dtype="<i8"),
        categories=categories,
        category_counts=np.frombuffer(blocks[2], dtype="<f8"),
        category_spend=np.frombuffer(blocks[3], dtype="<f8"),
        merchants=merchants,
        windows=window,
    )


def _upgraded_starts(starts: list[int], stamps: list[int], last_ts: int) -> list[int]:
    """Every window's start, those an older version did not keep found as the window loop
    finds them (online_windows.window_stats): past each entry expired against the user's
    newest timestamp, the newest entry never. Scanning from the first entry gives the loop's
    own answer: every entry the loop passed had expired against an earlier, lower clock."""
    found = list(starts)
    for length in WINDOW_LENGTHS[len(starts) :]:
        j, cutoff = 0, last_ts - length
        while j < len(stamps) - 1 and stamps[j] <= cutoff:
            j += 1
        found.append(j)
    return found
