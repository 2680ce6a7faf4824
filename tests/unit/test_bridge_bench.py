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
