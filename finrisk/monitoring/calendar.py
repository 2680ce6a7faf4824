"""Calendar phases: the parts of the month and the weekdays a window of live traffic is
compared in (finrisk.monitoring.profile keeps the training's shares per phase).

A window of about a day sees one part of the month and one weekday, which a reference over
weeks averages away: on days 1 to 5 rent is due (larger debits, larger 24 h debit sums), on
days 29 to 31 no bill is (the generator's and most banks' bills fall on days 1 to 28), and
spending follows the weekday. Phases are of the event time in UTC, as every finrisk timestamp.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MONTH_PART = "month_part"
WEEKDAY = "weekday"
# The first day of each part of the month: rent (1-5), the bills' other days (6-28), no bill
# (29-31). Measured (`finrisk bench drift`): splitting off days 6-7 too, whose 24 h and
# prior-maximum features still see the rent, leaves 9 major drift-free windows instead of 21
# (no sustained alarm either way), but catches the drift scenario one window later (5,077
# transactions, past its 5,000 target).
MONTH_PART_STARTS = (1, 6, 29)
# Each scheme's phases, in the order of their index.
PHASES: dict[str, tuple[str, ...]] = {
    MONTH_PART: tuple(
        f"days {first}-{next_first - 1}"
        for first, next_first in zip(MONTH_PART_STARTS, (*MONTH_PART_STARTS[1:], 32), strict=True)
    ),
    WEEKDAY: ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_NS_PER_DAY = 86_400 * 10**9
# 1970-01-01, day 0 of the epoch, was a Thursday (weekday 3, Monday being 0).
_EPOCH_WEEKDAY = 3


def phases(scheme: str, event_ns: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """The phase index (into PHASES[scheme]) of each event time, nanoseconds since the epoch."""
    ns = np.asarray(event_ns, dtype=np.int64)
    days = ns // _NS_PER_DAY
    if scheme == WEEKDAY:
        return ((days + _EPOCH_WEEKDAY) % 7).astype(np.intp)
    if scheme == MONTH_PART:
        dated = days.astype("datetime64[D]")
        day_of_month = (dated - dated.astype("datetime64[M]")).astype(np.int64) + 1
        starts = np.asarray(MONTH_PART_STARTS[1:])
        return np.searchsorted(starts, day_of_month, side="right").astype(np.intp)
    raise ValueError(f"unknown calendar scheme {scheme!r}: one of {sorted(PHASES)}")
