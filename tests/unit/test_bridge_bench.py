"""The bridge benchmark's arithmetic: the rate over the scored records' own timestamps."""

from __future__ import annotations

import pytest

from finrisk.serving.bridge.benchmark import StampSpan


def test_rate_counts_records_after_the_first_millisecond_over_the_span() -> None:
    span = StampSpan()
    for stamp in (1_500, 1_000, 1_000, 2_000, 1_750):  # arrival order is not stamp order
        span.add(stamp)
    assert (span.first_ms, span.last_ms, span.count) == (1_000, 2_000, 5)
    assert span.seconds == pytest.approx(1.0)
    assert span.rate() == pytest.approx(3.0)  # the two stamped at 1,000 ms open the span


def test_a_span_of_one_millisecond_has_no_rate() -> None:
    span = StampSpan()
    span.add(7)
    span.add(7)
    assert span.rate() == float("inf")


def test_a_later_span_keeps_only_the_records_stamped_from_its_start() -> None:
    span = StampSpan()
    for stamp in (1_000, 3_000, 2_000, 2_500, 2_000):
        span.add(stamp)
    later = span.since(2_000)
    assert (later.first_ms, later.last_ms, later.count) == (2_000, 3_000, 4)
    assert later.rate() == pytest.approx(2.0)  # 2,500 and 3,000 over one second
    assert span.since(4_000).count == 0
