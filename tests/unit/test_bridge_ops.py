"""Operations surface: metrics, health and readiness over HTTP, Kafka client settings, CLI."""

from __future__ import annotations

import gc
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from finrisk.cli import build_parser
from finrisk.errors import FinriskError
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.cli import bridge_settings
from finrisk.serving.bridge.metrics import BridgeMetrics, Health, OpsServer
from finrisk.settings import BridgeSettings, Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_batch_histogram_buckets_like_prometheus() -> None:
    metrics = BridgeMetrics()
    metrics.event_to_score.observe_many([0.005, 0.0051, 0.3, 99.0])
    family = next(
        f
        for f in text_string_to_metric_families(metrics.exposition().decode())
        if f.name == "finrisk_bridge_event_to_score_seconds"
    )
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets["0.005"] == 1  # "le" includes the bound
    assert buckets["0.01"] == 2
    assert buckets["0.5"] == 3
    assert buckets["30.0"] == 3 and buckets["+Inf"] == 4
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    assert total == pytest.approx(99.3101)


def test_ops_server_answers_health_readiness_and_metrics_on_loopback() -> None:
    clock = Clock()
    metrics, health = BridgeMetrics(), Health(stale_after_s=10, clock=clock)
    metrics.messages.labels("scored").inc(3)
    server = OpsServer("127.0.0.1", 0, metrics, health).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503  # not joined yet
        health.ready = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        clock.now = 11.0  # the loop stopped ticking: stalled
        assert httpx.get(f"{base}/healthz").status_code == 503
        assert httpx.get(f"{base}/readyz").status_code == 503
        health.tick()
        body = httpx.get(f"{base}/metrics").text
        assert 'finrisk_bridge_messages_total{outcome="scored"} 3.0' in body
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.stop()


def test_security_settings_become_librdkafka_properties(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bridge = BridgeSettings(
        bootstrap_servers="kafka.example:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="bridge",
        sasl_password="s3cret",  # type: ignore[arg-type]
        ssl_ca_location=tmp_path / "ca.crt",
        kafka_options={"socket.keepalive.enable": "true", "linger.ms": "10"},
    )
    conf = kafka_config.client_config(Settings(bridge=bridge))
    assert conf["bootstrap.servers"] == "kafka.example:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("bridge", "s3cret")
    assert conf["ssl.ca.location"] == str(tmp_path / "ca.crt")
    assert "s3cret" not in repr(bridge)  # secrets stay out of logs
    producer = kafka_config.producer_config(Settings(bridge=bridge), transactional=False)
    assert producer["linger.ms"] == "10"  # kafka_options win over the bridge's defaults
    consumer = kafka_config.consumer_config(Settings(bridge=bridge))
    assert consumer["enable.auto.commit"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    # A short fetch backoff: librdkafka's 1 s default stalls a consumer that drains its queue.
    assert consumer["fetch.queue.backoff.ms"] <= 50
    eos = kafka_config.producer_config(
        Settings(bridge=bridge.model_copy(update={"transactional_id": "pod-1"})), transactional=True
    )
    assert eos["transactional.id"] == "pod-1" and eos["enable.idempotence"] is True


def test_settings_come_from_environment_and_flags_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FINRISK_BRIDGE__BATCH_MAX_MESSAGES", "500")
    monkeypatch.setenv("FINRISK_BRIDGE__GROUP_ID", "from-env")
    args = build_parser().parse_args(["bridge", "--group-id", "from-flag", "--risk-model", ""])
    settings = bridge_settings(args)
    assert settings.bridge.batch_max_messages == 500
    assert settings.bridge.group_id == "from-flag"
    assert settings.bridge.risk_model is None


def test_the_cli_parser_loads_no_model_or_pipeline_library() -> None:
    """Every command's parser is built at start-up: a restarted bridge must not wait for
    scikit-learn, MLflow or kfp to load (seconds on 2 cores) before it consumes again."""
    heavy = ("sklearn", "scipy", "mlflow", "kfp", "kserve", "google.cloud.bigquery")
    code = (
        "import sys; from finrisk.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_invalid_flags_are_clear_errors() -> None:
    args = build_parser().parse_args(["bridge", "--batch-max-messages", "0"])
    with pytest.raises(FinriskError, match="--batch-max-messages"):
        bridge_settings(args)


def test_settings_file_section_is_typed(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "finrisk.yaml"
    path.write_text("bridge:\n  exactly_once: true\n  sink: bigquery\n  reasons: all\n")
    monkeypatch.setenv("FINRISK_CONFIG", str(path))
    bridge = Settings().bridge
    assert (bridge.exactly_once, bridge.sink, bridge.reasons) == (True, "bigquery", "all")
    path.write_text("bridge:\n  batch_max_mesages: 5\n")
    with pytest.raises(Exception, match="batch_max_mesages"):
        Settings()


def test_collector_first_generation_holds_a_few_batches() -> None:
    from finrisk.serving.bridge.app import GC_OBJECTS_PER_BATCH_MESSAGE, tune_collector

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_collector(2000)
        assert gc.get_threshold() == (GC_OBJECTS_PER_BATCH_MESSAGE * 2000, 10, 10)
        gc.set_threshold(10**9, 10, 10)
        tune_collector(2000)  # never lowers a larger threshold
        assert gc.get_threshold()[0] == 10**9
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
