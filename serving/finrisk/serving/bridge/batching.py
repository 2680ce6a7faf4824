"""Micro-batches bounded by size and by wait time.

`next_batch` takes what is already buffered without waiting, else blocks up to `idle_s` for a
first message; from then on it collects until the batch holds `max_messages` or `max_wait_s`
has passed since the first message came, whichever is first. Under a backlog batches are full;
under a trickle no message waits more than `max_wait_s` for its batch to close.

The source may run callbacks that invalidate items already collected (a Kafka consumer
revokes partitions inside its consume call): `discard` takes them out of the batch being
collected, so `next_batch` never returns them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
# consume(max_messages, timeout_s): up to max_messages items, waiting at most timeout_s.
Source = Callable[[int, float], Sequence[T]]


class MicroBatcher(Generic[T]):
    def __init__(
        self,
        source: Source[T],
        max_messages: int,
        max_wait_s: float,
        idle_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_messages < 1 or max_wait_s < 0 or idle_s < 0:
            raise ValueError("a micro-batch needs max_messages >= 1, max_wait_s >= 0, idle_s >= 0")
        self.source = source
        self.max_messages = max_messages
        self.max_wait_s = max_wait_s
        self.idle_s = idle_s
        self._clock = clock
        self._collecting: list[T] = []

    def buffered(self) -> list[T]:
        """What is already buffered, up to `max_messages`, without waiting."""
        return list(self.source(self.max_messages, 0.0))

    def next_batch(self) -> list[T]:
        """The next batch; empty when nothing came within `idle_s`."""
        batch = self._collecting = list(self.source(self.max_messages, 0.0))
        try:
            if not batch:
                batch.extend(self.source(1, self.idle_s))
                if not batch:
                    return batch
            deadline = self._clock() + self.max_wait_s
            while len(batch) < self.max_messages:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                more = self.source(self.max_messages - len(batch), remaining)
                batch.extend(more)  # after the call: `discard` may have filtered `batch`
            return batch
        finally:
            self._collecting = []

    def discard(self, unwanted: Callable[[T], bool]) -> int:
        """Take the items `unwanted` picks out of the batch being collected; how many."""
        batch = self._collecting
        kept = [item for item in batch if not unwanted(item)]
        dropped = len(batch) - len(kept)
        batch[:] = kept
        return dropped
