"""Typed settings: defaults, then a YAML file named by FINRISK_CONFIG, then FINRISK_* environment.

Nested fields take a double underscore in the environment: FINRISK_KAFKA__PORT=29092.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from finrisk.errors import FinriskError
from finrisk.kinds import DEFAULT_MODEL_NAMES, DETECTOR, RISK
from finrisk.outcomes import RealizedMetric

LOOPBACK = "127.0.0.1"


class KafkaSettings(BaseModel):
    port: int = 19092
    controller_port: int = 19093
    version: str = "4.1.1"
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"


class MLflowSettings(BaseModel):
    port: int = 5055
    # None: a SQLite file under the stack's home. PostgreSQL example:
    # postgresql+psycopg://user:pass@127.0.0.1:5432/mlflow
    backend_store_uri: str | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


class BigQuerySettings(BaseModel):
    port: int = 9050
    grpc_port: int = 9060
    project: str = "finrisk-local"

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def read_endpoint(self) -> str:
        """host:port of the emulator's BigQuery Storage Read API (gRPC, no TLS)."""
        return f"{LOOPBACK}:{self.grpc_port}"


class KubeSettings(BaseModel):
    """The local Kubernetes API server (`finrisk stack up kube`), built from source once."""

    port: int = 16443
    etcd_port: int = 12379
    etcd_peer_port: int = 12380
    version: str = "v1.34.4"
    etcd_version: str = "v3.6.16"


class BridgeSettings(BaseModel):
    """The Kafka bridge (`finrisk bridge`): FINRISK_BRIDGE__<FIELD>, `bridge:` in the file, or
    the flag --<field> (the command's flags are derived from these fields, their types,
    bounds, defaults and descriptions: finrisk/cli/settings_flags.py)."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str | None = Field(
        default=None, description="Kafka brokers; none: the local stack's broker"
    )
    input_topic: str = Field(default="transactions", description="the transactions topic")
    input_partitions: int = Field(
        default=6,
        ge=1,
        description="the transactions topic's partition count, when the bridge creates it; "
        "also the most replicas that get work (the autoscaling overlay's maximum)",
    )
    scored_topic: str = Field(default="transactions.scored", description="the scored topic")
    dlq_topic: str = Field(default="transactions.dlq", description="the dead-letter topic")
    changelog_topic: str | None = Field(
        default=None,
        description="the users' state: compacted, keyed by user, one partition per input "
        "partition; none: <group-id>.state",
    )
    merchant_frauds_topic: str = Field(
        default="merchant-frauds",
        description="confirmed frauds per merchant (compacted), read whole by every instance "
        "when the detector reads merchant risk; untouched otherwise",
    )
    group_id: str = Field(default="finrisk-bridge", description="the consumer group")
    session_timeout_ms: int = Field(default=10_000, ge=1_000, description="Kafka session timeout")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how the clients talk to the brokers"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = (
        Field(default=None, description="SASL mechanism, with a SASL protocol")
    )
    sasl_username: str | None = Field(default=None, description="SASL user name")
    # Secrets have no flag (a command line is visible to every user of the host).
    sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    ssl_ca_location: Path | None = Field(default=None, description="CA bundle for the brokers")
    ssl_certificate_location: Path | None = Field(default=None, description="client certificate")
    ssl_key_location: Path | None = Field(default=None, description="client key")
    ssl_key_password: SecretStr | None = Field(default=None, description="client key password")
    kafka_options: dict[str, str] = Field(
        default_factory=dict,
        description="any other librdkafka property, passed through to every client as is",
    )

    max_message_bytes: int = Field(
        default=65_536,
        ge=1_024,
        le=10_000_000,
        description="a larger message (key and value) is dead-lettered unread as too_large: a "
        "transaction is a few hundred bytes, and what is scored must fit the output topics",
    )
    dedup_window_s: float = Field(
        default=86_400.0,
        ge=0,
        description="a transaction id the user sent within this much event time behind their "
        "newest transaction is a repeat (a producer's retry): dead-lettered as duplicate, not "
        "scored or counted again; 0: no check",
    )
    dedup_max_ids: int = Field(
        default=1_000, ge=1, le=1_000_000, description="the most ids kept per user for that check"
    )
    batch_max_messages: int = Field(
        default=2_000, ge=1, le=100_000, description="micro-batch size bound"
    )
    batch_max_wait_ms: int = Field(
        default=25, ge=0, le=60_000, description="micro-batch wait bound (whichever comes first)"
    )
    checkpoint_interval_ms: int = Field(
        default=1_000,
        ge=0,
        le=600_000,
        description="how often the users' state goes to the changelog and input offsets are "
        "committed (exactly once does both per batch, in its transaction); 0: every batch. A "
        "crash replays what came after the last checkpoint: duplicates, never lost transactions",
    )

    predictor_url: str = Field(
        default="http://127.0.0.1:8080",
        description="the predictor (V2 Open Inference Protocol REST)",
    )
    risk_predictor_url: str | None = Field(
        default=None, description="where the risk model is served; none: the predictor URL"
    )
    transport: Literal["rest", "grpc"] = Field(
        default="rest",
        description="how inference calls reach the predictors: rest (binary tensors when the "
        "predictor lists the extension, else JSON) or grpc (the Open Inference Protocol over "
        "gRPC, raw tensors, at predictor_grpc_port on each predictor URL's host); metadata "
        "and profiles stay on REST",
    )
    predictor_grpc_port: int = Field(
        default=8081, ge=1, le=65_535, description="the predictors' gRPC port (KServe's 8081)"
    )
    detector_model: str = Field(
        default=DEFAULT_MODEL_NAMES[DETECTOR], description="the served detector's name"
    )
    risk_model: str | None = Field(
        default=DEFAULT_MODEL_NAMES[RISK],
        description="the served risk model's name; none (or ''): scored without a risk band",
    )
    challenger_url: str | None = Field(
        default=None,
        description="the predictor serving the detector's challenger alias (finrisk serve "
        "--alias challenger): scored beside the champion on every batch, into the scored "
        "records and monitoring, never into alerts; none: no shadow scoring",
    )
    reasons: Literal["all", "elevated", "none"] = Field(
        default="elevated",
        description="which scored records carry the risk model's top reasons: explaining costs "
        "the predictor ~10x a plain score, so by default only MEDIUM and HIGH bands are",
    )
    reasons_per_row: int = Field(default=3, ge=1, le=10, description="reasons per record")
    recommendations: int = Field(
        default=0,
        ge=0,
        le=5,
        description="recommendations per MEDIUM or HIGH scored record (the risk model's "
        "counterfactual search, ~0.5 ms a row in the predictor); 0: none, the default",
    )
    request_timeout_s: float = Field(default=5.0, gt=0, description="per predictor request")
    max_attempts: int = Field(default=3, ge=1, description="tries per predictor request")
    backoff_initial_s: float = Field(default=0.05, gt=0, description="first retry's wait")
    backoff_max_s: float = Field(default=2.0, gt=0, description="longest retry wait")
    breaker_failure_threshold: int = Field(
        default=3, ge=1, description="failed requests in a row that open the circuit breaker"
    )
    breaker_reset_s: float = Field(
        default=1.0, gt=0, description="how long the open breaker waits before a trial request"
    )

    monitoring: bool = Field(
        default=True,
        description="watch each served model version's live inputs and outputs against its "
        "reference profile, per window (docs/monitoring.md)",
    )
    monitoring_topic: str = Field(
        default="transactions.monitoring",
        description="where each closed window's monitoring record goes",
    )
    monitoring_window_transactions: int = Field(
        default=50_000,
        ge=100,
        le=10_000_000,
        description="a monitoring window closes after this many transactions...",
    )
    monitoring_window_s: float = Field(
        default=60.0,
        gt=0,
        description="...or at the first batch after this many seconds, whichever comes first",
    )

    exactly_once: bool = Field(
        default=False,
        description="write the scored topic in Kafka transactions (read it with read_committed)",
    )
    transactional_id: str | None = Field(
        default=None,
        description="stable across restarts of one instance; none: <group-id>-<host name>",
    )

    sink: Literal["local", "bigquery", "none"] = Field(
        default="local", description="where anomalies go: a SQLite file, BigQuery, or nowhere"
    )
    local_sink_path: Path | None = Field(
        default=None, description="the local sink's SQLite file; none: <home>/anomalies.sqlite"
    )
    bigquery_project: str | None = Field(
        default=None, description="BigQuery project; none: the stack's (bigquery.project)"
    )
    bigquery_dataset: str = Field(default="finrisk", description="BigQuery dataset")
    bigquery_table: str = Field(default="anomalies", description="BigQuery table")
    bigquery_endpoint: str | None = Field(
        default=None, description="BigQuery API URL; none: Google's (the emulator's locally)"
    )
    bigquery_location: str | None = Field(default=None, description="BigQuery location")
    max_in_flight_batches: int = Field(
        default=64,
        ge=2,
        le=10_000,
        description="backpressure: past this many batches prepared or sent and not yet durable, "
        "the bridge pauses its partitions (still serving the group) until they catch up",
    )
    sink_max_backlog_rows: int = Field(
        default=20_000,
        ge=1,
        description="backpressure: past this many anomaly rows not yet flushed to the sink, "
        "likewise",
    )
    sink_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="how long one flush of the sink retries what may pass by itself (an "
        "unavailable service, a timeout) before the bridge pauses and tries again later",
    )

    http_host: str = Field(default=LOOPBACK, description="health, readiness and metrics host")
    http_port: int = Field(
        default=9108,
        ge=0,
        le=65_535,
        description="health, readiness and Prometheus metrics port; 0: any free one (logged); "
        "worker i serves on the port + i",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="bridge processes on this host, one consumer group (one is a core's worth "
        "of scoring); in Kubernetes keep 1 and scale the replicas",
    )


class LabelsSettings(BaseModel):
    """The confirmed-labels loader (`finrisk labels load`): FINRISK_LABELS__<FIELD>, `labels:`
    in the file, or the flag --<field>. It reaches Kafka the way the bridge does (its
    bootstrap_servers and security settings)."""

    model_config = ConfigDict(extra="forbid")

    labels_topic: str = Field(
        default="transactions.labels", description="the confirmed-labels topic"
    )
    scored_topic: str = Field(
        default="transactions.scored", description="the bridge's scored topic"
    )
    monitoring_topic: str = Field(
        default="transactions.monitoring", description="the bridge's monitoring topic"
    )
    dlq_topic: str = Field(
        default="transactions.labels.dlq", description="where records it cannot load go"
    )
    group_id: str = Field(default="finrisk-labels-loader", description="the consumer group")
    bigquery_project: str | None = Field(
        default=None, description="BigQuery project; none: the local stack's"
    )
    bigquery_dataset: str = Field(default="finrisk", description="BigQuery dataset")
    labels_table: str = Field(default="labels", description="table of label records")
    scored_table: str = Field(
        default="scored_transactions", description="table of the models' verdicts"
    )
    monitoring_table: str = Field(
        default="model_monitoring", description="table of the bridge's monitoring windows"
    )
    bigquery_endpoint: str | None = Field(
        default=None, description="BigQuery API endpoint (an emulator); none: Google's"
    )
    bigquery_location: str | None = Field(default=None, description="BigQuery location")
    batch_max_records: int = Field(
        default=500, ge=1, le=10_000, description="records per batch (BigQuery suggests 500)"
    )
    batch_max_wait_ms: int = Field(default=1_000, ge=1, description="longest wait to fill a batch")
    sink_timeout_s: float = Field(
        default=30.0, gt=0, description="how long a batch's inserts are retried before exiting"
    )


class MonitorSettings(BaseModel):
    """`finrisk monitor` and the pipeline's check-drift step: when to retrain
    (finrisk.monitoring.policy) and where the tables are. FINRISK_MONITOR__<FIELD>, `monitor:`
    in the file, or the flag --<field>. Defaults and why: docs/monitoring.md."""

    model_config = ConfigDict(extra="forbid")

    psi_threshold: float = Field(
        # finrisk.monitoring.drift.MAJOR (not imported: the policy imports these settings).
        default=0.25,
        gt=0,
        description="a window drifted when its worst PSI (feature, category or score) is at "
        "least this: the usual 'major shift'",
    )
    sustained_windows: int = Field(
        default=3,
        ge=1,
        le=1_000,
        description="drift must hold in this many consecutive latest windows (one noisy "
        "window retrains nothing)",
    )
    window_hours: float = Field(
        default=24.0, gt=0, description="monitoring windows read: those that ended this recently"
    )
    recall_drop: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="retrain when realized recall falls this far (absolute) below its baseline",
    )
    precision_drop: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="likewise for realized alert precision",
    )
    min_frauds: int = Field(
        default=20, ge=1, description="confirmed frauds needed before recall is judged"
    )
    min_alerts: int = Field(
        default=20, ge=1, description="labelled alerts needed before alert precision is judged"
    )
    min_labels: int = Field(
        default=200,
        ge=0,
        description="labelled transactions in the recent days needed to retrain at all: "
        "fewer would train on what the champion already saw",
    )
    recent_days: int = Field(
        default=7, ge=1, le=365, description="realized days judged (and the labelled window)"
    )
    baseline_days: int = Field(
        default=28,
        ge=1,
        le=365,
        description="the champion's realized days before those, its baseline when no offline "
        "test metrics are given",
    )
    cooldown_hours: float = Field(
        default=24.0,
        ge=0,
        description="no new retrain this soon after the last one decided (it is still "
        "training, gating or rolling out)",
    )
    model: str = Field(
        default=DEFAULT_MODEL_NAMES[DETECTOR], description="the monitored model's name"
    )
    risk_model: str = Field(
        default=DEFAULT_MODEL_NAMES[RISK],
        description="the risk model's name (promoted with the detector: served as a pair)",
    )
    live_gate: bool = Field(
        default=True,
        description="judge a challenger the gate shadowed (pipeline parameter "
        "promotion=shadow) on live traffic and promote it when it wins (reads MLflow)",
    )
    inference_service: str | None = Field(
        default=None,
        description="the live gate rolls a promoted pair out on this InferenceService first "
        "(the pipeline's deploy step pins versions there); none: the predictors follow the "
        "aliases (finrisk serve locally)",
    )
    inference_service_namespace: str = Field(
        default="finrisk", description="the InferenceService's namespace"
    )
    rollout_timeout_s: float = Field(
        default=600.0, gt=0, description="how long a rollout may take to be Ready and serving"
    )
    live_metric: RealizedMetric = Field(
        default="f1",
        description="a shadowed challenger is promoted when it beats the champion on this "
        "realized metric over the same shadowed transactions (f1: neither flagging everything "
        "nor flagging nothing wins)",
    )
    live_min_frauds: int = Field(
        default=30,
        ge=1,
        description="confirmed frauds among the shadowed transactions before a challenger is "
        "judged live",
    )
    live_min_improvement: float = Field(
        default=0.01,
        ge=-1,
        le=1,
        description="margin by which the challenger must beat the champion live: above 0, a "
        "tie (two detectors that never alert) promotes nothing",
    )
    bigquery_project: str | None = Field(
        default=None, description="BigQuery project; none: the stack's (bigquery.project)"
    )
    bigquery_dataset: str = Field(default="finrisk", description="BigQuery dataset")
    bigquery_endpoint: str | None = Field(
        default=None, description="BigQuery API URL; none: Google's (the emulator's locally)"
    )
    monitoring_table: str = Field(
        default="model_monitoring", description="the bridge's per-window monitoring table"
    )
    decisions_table: str = Field(
        default="monitor_decisions", description="where each decision and its reasons go"
    )
    interval_minutes: float = Field(
        default=60.0, gt=0, description="without --once: minutes between evaluations"
    )


class DashboardSettings(BaseModel):
    """`finrisk dashboard`: where it listens and which stores it reads. FINRISK_DASHBOARD__<FIELD>,
    `dashboard:` in the file, or the flag --<field>. Each store it cannot reach is named on the
    page; none stops it."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default=LOOPBACK, description="address to listen on (0.0.0.0 in a pod)")
    port: int = Field(default=8501, ge=1, le=65535, description="port to listen on")
    bigquery_project: str | None = Field(
        default=None, description="BigQuery project; none: the stack's (bigquery.project)"
    )
    bigquery_dataset: str = Field(
        default="finrisk",
        description="the warehouse dataset: scored_transactions, model_monitoring, labels, "
        "monitor_decisions (finrisk labels load, finrisk monitor)",
    )
    bigquery_endpoint: str | None = Field(
        default=None, description="BigQuery API URL; none: Google's (the emulator's locally)"
    )
    anomalies_table: str = Field(
        default="anomalies",
        description="the bridge's anomaly sink: a table of the dataset, or project.dataset.table",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="the MLflow registry; none: MLFLOW_TRACKING_URI, else the local stack's",
    )
    bridge_metrics_url: str | None = Field(
        default=None,
        description="the bridge's Prometheus endpoint (…/metrics); none: the stack's default",
    )
    predictor_url: str | None = Field(
        default=None, description="the predictor's base URL; none: the local stack's"
    )
    detector_model: str = Field(
        default=DEFAULT_MODEL_NAMES[DETECTOR], description="the detector's registered name"
    )
    risk_model: str = Field(
        default=DEFAULT_MODEL_NAMES[RISK], description="the risk model's registered name"
    )
    refresh_seconds: float = Field(
        default=5.0, ge=1, le=3600, description="how often the live page reads the stores again"
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class PredictorPortSettings(BaseModel):
    """Where the local stack runs `finrisk serve` (`finrisk stack up predictor`)."""

    port: int = 8080
    # The Open Inference Protocol over gRPC, beside REST (KServe's port).
    grpc_port: int = 8081

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


class ImagesSettings(BaseModel):
    """`finrisk images build|push` (`make images`): FINRISK_IMAGES__<FIELD>, `images:` in the
    file, or the flag --<field>."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(
        default="ghcr.io/finrisk",
        description="registry and namespace of the images: <repo>/finrisk-components and "
        "<repo>/finrisk-predictor (the default is what the compiled pipeline and manifests name)",
    )
    tag: str = Field(default="0.1.0", description="the images' tag")
    base_image: str = Field(
        default="python:3.11-slim",
        description="FROM of both images; when it is this default and can be neither found nor "
        "pulled, a Debian-made base (scripts/make-local-base.sh) stands in",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA bundle the build's downloads trust (an inspecting proxy's), passed as a "
        "build secret, never written into an image; none: PIP_CERT or SSL_CERT_FILE when set",
    )
    tool: Literal["docker", "podman", "buildah"] | None = Field(
        default=None,
        description="the image tool; none: the first that works of docker, buildah, podman",
    )


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "finrisk"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FINRISK_", env_nested_delimiter="__", extra="forbid"
    )

    # Logs, pids and service data of the local stack (git-ignored).
    home: Path = Field(default_factory=lambda: Path.cwd() / ".finrisk")
    # Downloads that outlive a checkout (the Kafka jars).
    cache_dir: Path = Field(default_factory=_default_cache)
    kafka: KafkaSettings = KafkaSettings()
    mlflow: MLflowSettings = MLflowSettings()
    bigquery: BigQuerySettings = BigQuerySettings()
    kube: KubeSettings = KubeSettings()
    bridge: BridgeSettings = BridgeSettings()
    labels: LabelsSettings = LabelsSettings()
    monitor: MonitorSettings = MonitorSettings()
    dashboard: DashboardSettings = DashboardSettings()
    predictor: PredictorPortSettings = PredictorPortSettings()
    images: ImagesSettings = ImagesSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("FINRISK_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FinriskError(f"FINRISK_CONFIG names {config_file}, which is not a file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)
