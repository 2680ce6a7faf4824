"""Micro-batches close on size or on wait time, whichever comes first."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from finrisk.serving.bridge.batching import MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedSource:
    """Hands out queued items; a call that finds none lets the asked-for wait pass."""

    def __init__(self, clock: Clock, arrivals: dict[float, list[int]]) -> None:
        self.clock = clock
        self.arrivals = dict(sorted(arrivals.items()))
        self.calls: list[tuple[int, float]] = []

    def _ready(self) -> list[int]:
        ready: list[int] = []
        for at in [t for t in self.arrivals if t <= self.clock.now]:
            ready.extend(self.arrivals.pop(at))
        return ready

    def __call__(self, max_messages: int, timeout_s: float) -> Sequence[int]:
        self.calls.append((max_messages, timeout_s))
        buffered = self._ready()
        if not buffered:
            later = [t for t in self.arrivals if t <= self.clock.now + timeout_s]
            self.clock.now = later[0] if later else self.clock.now + timeout_s
            buffered = self._ready()
        taken, rest = buffered[:max_messages], buffered[max_messages:]
        if rest:
            self.arrivals = {self.clock.now: rest, **self.arrivals}
        return taken


def test_a_backlog_fills_the_batch_to_its_size_without_waiting() -> None:
    clock = Clock()
    source = ScriptedSource(clock, {100.0: list(range(25))})
    batcher = MicroBatcher(source, max_messages=10, max_wait_s=5.0, clock=clock)
    assert batcher.next_batch() == list(range(10))
    assert batcher.next_batch() == list(range(10, 20))
    assert clock.now == 100.0


def test_a_trickle_closes_the_batch_after_max_wait_from_the_first_message() -> None:
    clock = Clock()
    source = ScriptedSource(clock, {100.3: [1], 100.35: [2], 100.39: [3], 100.6: [4]})
    batcher = MicroBatcher(source, max_messages=100, max_wait_s=0.1, idle_s=1.0, clock=clock)
    assert batcher.next_batch() == [1, 2, 3]
    assert clock.now == pytest.approx(100.4)
    assert batcher.next_batch() == [4]


def test_nothing_within_idle_gives_an_empty_batch() -> None:
    clock = Clock()
    source = ScriptedSource(clock, {})
    batcher = MicroBatcher(source, max_messages=5, max_wait_s=0.1, idle_s=0.5, clock=clock)
    assert batcher.next_batch() == []
    assert clock.now == pytest.approx(100.5)


def test_the_source_is_never_asked_for_more_than_the_room_left() -> None:
    clock = Clock()
    source = ScriptedSource(clock, {100.0: [1, 2, 3], 100.01: [4, 5, 6, 7, 8, 9]})
    batcher = MicroBatcher(source, max_messages=5, max_wait_s=1.0, clock=clock)
    assert batcher.next_batch() == [1, 2, 3, 4, 5]
    assert [asked for asked, _ in source.calls] == [5, 2]


@pytest.mark.parametrize(("size", "wait", "idle"), [(0, 0.1, 0.1), (1, -0.1, 0.1), (1, 0.1, -1.0)])
def test_invalid_bounds_are_refused(size: int, wait: float, idle: float) -> None:
    with pytest.raises(ValueError, match="micro-batch"):
        MicroBatcher(lambda n, t: [], max_messages=size, max_wait_s=wait, idle_s=idle)


def test_items_discarded_during_a_later_call_leave_the_batch_being_collected() -> None:
    # A consumer revokes partitions inside its consume call: what was collected from them
    # before must not reach the batch (their state is dropped with them).
    clock = Clock()
    calls = 0

    def source(max_messages: int, timeout_s: float) -> Sequence[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return [1, 2, 3, 4]
        if calls == 2:
            assert batcher.discard(lambda item: item % 2 == 0) == 2
            clock.now += timeout_s
            return [5, 6]
        clock.now += timeout_s
        return []

    batcher = MicroBatcher(source, max_messages=10, max_wait_s=0.1, clock=clock)
    assert batcher.next_batch() == [1, 3, 5, 6]
    # Outside a collection there is nothing to discard.
    assert batcher.discard(lambda item: True) == 0
