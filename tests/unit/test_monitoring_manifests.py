"""manifests/overlays/monitoring: the Prometheus Operator resources against the upstream CRDs,
every metric the alert rules and the Grafana dashboard query exists, the scrape configs select
what the base runs, and the monitor CronJob runs a command that parses."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from finrisk.pipelines.monitor import register
from finrisk.serving.bridge.metrics import BridgeMetrics
from finrisk.serving.bridge.monitoring import MonitoringGauges
from finrisk.serving.predictor import metrics as predictor_metrics
from finrisk.settings import MonitorSettings
from tests.support.crds import validate_manifest

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "manifests" / "overlays" / "monitoring"
BASE = ROOT / "manifests" / "base"

# What Prometheus itself adds to every scrape target.
SCRAPE_METRICS = {"up"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
}
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "le", "inf", "nan",
}  # fmt: skip


def _families(collector: Collector) -> set[tuple[str, str]]:
    return {(family.name, family.type) for family in collector.collect()}


def known_metrics() -> set[str]:
    """Every series name the bridge, the predictor and the monitoring expose, as scraped."""
    registry = CollectorRegistry()
    MonitoringGauges(registry)
    families = _families(registry) | _families(BridgeMetrics().registry)
    for value in vars(predictor_metrics).values():
        if isinstance(value, MetricWrapperBase):
            families |= _families(value)
    names = {name + suffix for name, kind in families for suffix in _SUFFIXES[kind]}
    return names | SCRAPE_METRICS


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label matchers,
    ranges, strings and numbers left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        word = match.group()
        if following.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue  # a function or aggregation, or a keyword
        names.add(word)
    return names


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((OVERLAY / name).read_text()) if d]


def _base_docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]


def _rules() -> list[dict[str, Any]]:
    (rule,) = _docs("prometheus-rules.yaml")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((OVERLAY / "grafana" / "finrisk.json").read_text()))


def test_the_metric_name_check_sees_what_it_should() -> None:
    expr = (
        'sum by (model) (rate(finrisk_predictor_requests_total{status=~"5.."}[5m])) '
        "/ on (model) group_left max(finrisk_predictor_model_version) > bool 0.01 "
        'or absent(up{job="x"}) and histogram_quantile(0.9, finrisk_bridge_batch_seconds_bucket)'
    )
    assert metric_names(expr) == {
        "finrisk_predictor_requests_total",
        "finrisk_predictor_model_version",
        "up",
        "finrisk_bridge_batch_seconds_bucket",
    }
    known = known_metrics()
    assert {"finrisk_bridge_messages_total", "finrisk_bridge_consumer_lag"} <= known
    assert "finrisk_predictor_request_seconds_bucket" in known
    assert "finrisk_bridge_messages" not in known  # a counter is scraped as <name>_total
    assert metric_names("rate(finrisk_bridge_mesages_total[5m])") - known  # a typo is caught


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("prometheus-rules.yaml", {"PrometheusRule"}),
        ("scrape.yaml", {"ServiceMonitor", "PodMonitor"}),
    ],
)
def test_prometheus_operator_resources_validate_against_the_upstream_crds(
    name: str, kinds: set[str]
) -> None:
    docs = _docs(name)
    assert {d["kind"] for d in docs} == kinds
    for doc in docs:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert validate_manifest(doc) == [], doc["kind"]


def test_a_misspelt_rule_field_is_refused_by_the_crd_check() -> None:
    (rule,) = _docs("prometheus-rules.yaml")
    rule["spec"]["groups"][0]["rules"][0]["expresion"] = "up"
    assert any("expresion" in e for e in validate_manifest(rule))


def test_the_alerts_cover_what_they_must() -> None:
    alerts = {r["alert"]: r for r in _rules()}
    assert set(alerts) == {
        "FinriskDriftMajorSustained",
        "FinriskAlertRateFarFromReference",
        "FinriskDeadLetterRateHigh",
        "FinriskConsumerLagHigh",
        "FinriskBridgeDown",
        "FinriskPredictorErrors",
    }
    for name, rule in alerts.items():
        assert rule["for"] and rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
    # Sustained: major drift held for a while, not one window.
    assert "finrisk_monitoring_drift_level" in alerts["FinriskDriftMajorSustained"]["expr"]
    assert alerts["FinriskDriftMajorSustained"]["for"] == "30m"


def test_every_rule_queries_existing_metrics() -> None:
    known = known_metrics()
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, (rule["alert"], names - known)


def test_the_dashboard_parses_and_every_panel_queries_existing_metrics() -> None:
    dashboard = _dashboard()
    known = known_metrics()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Bridge", "Predictor", "Model monitoring"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queried: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= known, (panel["title"], names - known)
            queried |= names
    # Each part of the system is on it.
    for wanted in (
        "finrisk_bridge_consumer_lag",
        "finrisk_bridge_event_to_score_seconds_bucket",
        "finrisk_predictor_request_seconds_bucket",
        "finrisk_monitoring_feature_psi",
        "finrisk_monitoring_score_psi",
        "finrisk_monitoring_reference_alert_rate",
        "finrisk_monitoring_band_share",
        "finrisk_monitoring_drift_level",
    ):
        assert wanted in queried, wanted


def test_the_dashboard_ships_as_a_labelled_config_map() -> None:
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [
        "../../base",
        "monitor.yaml",
        "labels-loader.yaml",
        "scrape.yaml",
        "prometheus-rules.yaml",
    ]
    (generator,) = kustomization["configMapGenerator"]
    assert generator["files"] == ["grafana/finrisk.json"]
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"


def test_the_scrape_configs_select_what_the_base_runs() -> None:
    monitors = {d["kind"]: d for d in _docs("scrape.yaml")}
    bridge = {d["kind"]: d for d in yaml.safe_load_all((BASE / "bridge.yaml").read_text()) if d}
    service = bridge["Service"]
    selector = monitors["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitors["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # The predictor's pods: KServe labels them with their InferenceService.
    predictor = BASE / "predictor" / "predictor.yaml"
    (isvc,) = [d for d in yaml.safe_load_all(predictor.read_text()) if d]
    pod = monitors["PodMonitor"]["spec"]
    assert pod["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"]
    }
    ports = {p["containerPort"] for p in isvc["spec"]["predictor"]["containers"][0]["ports"]}
    assert pod["podMetricsEndpoints"][0]["portNumber"] in ports


def test_the_monitor_cron_job_runs_a_command_that_parses() -> None:
    docs = {d["kind"]: d for d in _docs("monitor.yaml")}
    job = docs["CronJob"]["spec"]
    assert job["concurrencyPolicy"] == "Forbid"  # two evaluations never start two runs
    (container,) = job["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["finrisk", "monitor", "--once"]
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(command[1:])
    assert args.once and not args.local
    # The runs it starts are pipeline runs with known parameters, on the confirmed labels.
    from finrisk.pipelines.cli import parse_params
    from finrisk.pipelines.retraining import retraining_pipeline

    params = parse_params(args.param)
    declared = retraining_pipeline.component_spec.inputs or {}
    assert set(params) <= set(declared), set(params) - set(declared)
    assert params["data_source"] == "bigquery" and params["bigquery_labels_table"]
    # Every setting the ConfigMap gives is a MonitorSettings field, of the right type.
    config = docs["ConfigMap"]["data"]
    fields = {
        key.removeprefix("FINRISK_MONITOR__").lower(): value
        for key, value in config.items()
        if key.startswith("FINRISK_MONITOR__")
    }
    assert set(fields) <= set(MonitorSettings.model_fields)
    MonitorSettings.model_validate(fields)
    assert "KF_PIPELINES_ENDPOINT" in config


def test_the_labels_loader_runs_a_command_that_parses_with_its_settings() -> None:
    from finrisk.serving.labels.cli import register as register_labels
    from finrisk.settings import BridgeSettings, LabelsSettings

    docs = {d["kind"]: d for d in _docs("labels-loader.yaml")}
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    parser = argparse.ArgumentParser()
    register_labels(parser.add_subparsers())
    args = parser.parse_args(container["command"][1:])
    assert container["command"][:3] == ["finrisk", "labels", "load"]
    assert args.labels_command == "load"
    # Its settings are LabelsSettings fields; Kafka comes from the bridge's ConfigMap.
    config = docs["ConfigMap"]["data"]
    fields = {k.removeprefix("FINRISK_LABELS__").lower(): v for k, v in config.items()}
    assert all(k.startswith("FINRISK_LABELS__") for k in config)
    LabelsSettings.model_validate(fields)
    sources = [s["configMapRef"]["name"] for s in container["envFrom"]]
    assert sources == ["finrisk-bridge-config", docs["ConfigMap"]["metadata"]["name"]]
    # The topics it reads are the ones the bridge writes.
    bridge = next(d for d in _base_docs("bridge.yaml") if d["kind"] == "ConfigMap")["data"]
    assert config["FINRISK_LABELS__SCORED_TOPIC"] == bridge["FINRISK_BRIDGE__SCORED_TOPIC"]
    assert config["FINRISK_LABELS__MONITORING_TOPIC"] == bridge["FINRISK_BRIDGE__MONITORING_TOPIC"]
    assert BridgeSettings.model_fields["monitoring_topic"].default == "transactions.monitoring"
