"""Micro-batches bounded by size and by wait time.

`next_batch` takes what is already buffered without waiting, else blocks up to `idle_s` for a
first message; from then on it collects until the batch holds `max_messages` or `max_wait_s`
has passed since the first message came, whichever is first. Under a backlog batches are full;
under a trickle no message waits more than `max_wait_s` for its batch to close.
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

    def buffered(self) -> list[T]:
        """What is already buffered, up to `max_messages`, without waiting."""
        return list(self.source(self.max_messages, 0.0))

    def next_batch(self) -> list[T]:
        """The next batch; empty when nothing came within `idle_s`."""
        batch = list(self.source(self.max_messages, 0.0))
        if not batch:
            batch = list(self.source(1, self.idle_s))
            if not batch:
                return batch
        deadline = self._clock() + self.max_wait_s
        while len(batch) < self.max_messages:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            batch.extend(self.source(self.max_messages - len(batch), remaining))
        return batch
