"""The bridge benchmark's arithmetic (the rate over the scored records' own timestamps), its
sinks and its history file."""

from __future__ import annotations

from typing import Any

import pytest

from finrisk.bench.bridge import StampSpan, figures, sink_settings
from finrisk.bench.cli import BRIDGE_FLAGS, bridge_run_settings
from finrisk.cli import build_parser
from finrisk.cli.settings_flags import given, overlaid
from finrisk.settings import BridgeSettings, Settings


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


def test_a_run_keeps_its_headline_figures() -> None:
    result: dict[str, Any] = {
        "machine": {"cpus": 2, "load_average_1m": 1.5},
        "input": {"transactions": 100_000},
        "bridge": {
            "tx_per_s": 41_000.0,
            "tx_per_s_until_committed": 38_000.0,
            "settings": {"sink": "bigquery", "workers": 1},
        },
        "one_call_per_message": {"tx_per_s": 400.0},
        "speedup": 102.5,
        "latency": {"offered_tx_per_s": 5_000.0, "event_to_score": {"p99_ms": 80.0}},
        "sink": {"kind": "bigquery", "anomalies_stored": 1_234},
        "monitoring": {"tx_per_s_on": 41_000.0, "tx_per_s_off": 42_000.0, "cost": 0.0238},
        "transports": {"tx_per_s": {"rest": 41_000.0, "grpc": 45_000.0}},
    }
    kept = figures(result)
    assert (kept["tx_per_s"], kept["one_call_per_message_tx_per_s"]) == (41_000.0, 400.0)
    assert (kept["speedup"], kept["p99_ms_at_offered"]) == (102.5, 80.0)
    assert (kept["tx_per_s_until_committed"], kept["anomalies_stored"]) == (38_000.0, 1_234)
    assert (kept["monitoring_on_tx_per_s"], kept["monitoring_off_tx_per_s"]) == (41_000, 42_000)
    assert kept["monitoring_cost"] == 0.0238
    assert (kept["rest_tx_per_s"], kept["grpc_tx_per_s"]) == (41_000.0, 45_000.0)


def test_each_sink_the_benchmark_offers_is_one_of_the_runs_own() -> None:
    settings = Settings()
    one, other = sink_settings(settings, "bigquery"), sink_settings(settings, "bigquery")
    assert one["sink"] == "bigquery" and one["bigquery_dataset"] != other["bigquery_dataset"]
    assert one["bigquery_endpoint"] == settings.bigquery.endpoint  # the local emulator
    assert sink_settings(settings, "local")["local_sink_path"].endswith(".sqlite")
    assert sink_settings(settings, "none") == {"sink": "none"}
    BridgeSettings.model_validate(one)  # real settings


def test_a_recorded_run_keeps_what_it_was_asked_to_do() -> None:
    args = build_parser().parse_args(["bench", "bridge", "--workers", "2", "--sink", "none"])
    bridge = overlaid(BridgeSettings(), given(args, BridgeSettings, only=BRIDGE_FLAGS))
    settings = bridge_run_settings(args, bridge)
    assert (settings["workers"], settings["sink"], settings["count"]) == (2, "none", 100_000)
    assert settings["batch_max_messages"] == BridgeSettings().batch_max_messages  # as deployed
    assert settings["predictor_url"] is None  # models trained and served by the run
    assert settings["transport"] == "rest"  # as deployed; the run measures gRPC beside it
