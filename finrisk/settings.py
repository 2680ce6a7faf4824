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


class KubeSettings(BaseModel):
    """The local Kubernetes API server (`finrisk stack up kube`), built from source once."""

    port: int = 16443
    etcd_port: int = 12379
    etcd_peer_port: int = 12380
    version: str = "v1.34.4"
    etcd_version: str = "v3.6.16"


class BridgeSettings(BaseModel):
    """The Kafka bridge (`finrisk bridge`): FINRISK_BRIDGE__<FIELD> or `bridge:` in the file."""

    model_config = ConfigDict(extra="forbid")

    # Kafka. None: the local stack's broker.
    bootstrap_servers: str | None = None
    input_topic: str = "transactions"
    scored_topic: str = "transactions.scored"
    dlq_topic: str = "transactions.dlq"
    # Compacted, keyed by user, one partition per input partition. None: "<group_id>.state".
    changelog_topic: str | None = None
    group_id: str = "finrisk-bridge"
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    # Any other librdkafka property, passed through to every client as is.
    kafka_options: dict[str, str] = Field(default_factory=dict)

    # A message larger than this (key and value) is dead-lettered unread as `too_large`: a
    # transaction is a few hundred bytes, and what is scored must fit the output topics.
    max_message_bytes: int = Field(default=65_536, ge=1_024, le=10_000_000)
    # A transaction id a user sent before, within this much event time behind the user's
    # newest transaction, is a repeat (a producer's retry): dead-lettered as `duplicate`, not
    # scored or counted again. At most dedup_max_ids ids per user are kept. 0: no check.
    dedup_window_s: float = Field(default=86_400.0, ge=0)
    dedup_max_ids: int = Field(default=1_000, ge=1, le=1_000_000)
    # Micro-batches end at whichever bound comes first.
    batch_max_messages: int = Field(default=2_000, ge=1, le=100_000)
    batch_max_wait_ms: int = Field(default=25, ge=0, le=60_000)
    # How often the users' state goes to the changelog and input offsets are committed (at
    # least once; exactly once does both per batch, in its transaction). 0: every batch. A
    # crash replays what came after the last checkpoint: duplicates, never lost transactions.
    checkpoint_interval_ms: int = Field(default=1_000, ge=0, le=600_000)

    # The predictor (V2 Open Inference Protocol REST); the risk model may live elsewhere.
    predictor_url: str = "http://127.0.0.1:8080"
    risk_predictor_url: str | None = None
    detector_model: str = DEFAULT_MODEL_NAMES[DETECTOR]
    # None: transactions are scored without a risk band.
    risk_model: str | None = DEFAULT_MODEL_NAMES[RISK]
    # Which transactions carry the risk model's top reasons: explaining costs the predictor
    # ~10x a plain score (linear heads; features + 1 times for trees), so by default only
    # MEDIUM and HIGH bands are explained.
    reasons: Literal["all", "elevated", "none"] = "elevated"
    reasons_per_row: int = Field(default=3, ge=1, le=10)
    request_timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    backoff_initial_s: float = Field(default=0.05, gt=0)
    backoff_max_s: float = Field(default=2.0, gt=0)
    breaker_failure_threshold: int = Field(default=3, ge=1)
    breaker_reset_s: float = Field(default=1.0, gt=0)

    # Exactly-once for the scored topic: Kafka transactions, read_committed downstream.
    exactly_once: bool = False
    # None: "<group_id>-<host name>"; keep it stable across restarts of one instance.
    transactional_id: str | None = None

    # Where anomalies go: a SQLite file (embedded default), BigQuery, or nowhere.
    sink: Literal["local", "bigquery", "none"] = "local"
    # None: <home>/anomalies.sqlite
    local_sink_path: Path | None = None
    # None: the stack's project (bigquery.project).
    bigquery_project: str | None = None
    bigquery_dataset: str = "finrisk"
    bigquery_table: str = "anomalies"
    # None: Google's service; the emulator's URL (bigquery.endpoint) locally.
    bigquery_endpoint: str | None = None
    bigquery_location: str | None = None
    # Backpressure: past either bound the bridge stops consuming (pausing its partitions,
    # still serving the group) until acknowledgements and the sink catch up. Batches prepared
    # or sent and not yet durable; anomaly rows handed to the sink and not yet flushed.
    max_in_flight_batches: int = Field(default=64, ge=2, le=10_000)
    sink_max_backlog_rows: int = Field(default=20_000, ge=1)
    # How long one flush of the sink keeps retrying what may pass by itself (an unavailable
    # service, a timeout) before the bridge pauses and tries again later.
    sink_timeout_s: float = Field(default=10.0, gt=0)

    # Health, readiness and Prometheus metrics; port 0: any free one (logged). With several
    # workers, worker i serves on http_port + i.
    http_host: str = LOOPBACK
    http_port: int = Field(default=9108, ge=0, le=65_535)
    # Bridge processes in the group on this host (one is one core's worth of scoring); in
    # Kubernetes keep 1 and scale the Deployment's replicas.
    workers: int = Field(default=1, ge=1, le=64)


class PredictorPortSettings(BaseModel):
    """Where the local stack runs `finrisk serve` (`finrisk stack up predictor`)."""

    port: int = 8080

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


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
    predictor: PredictorPortSettings = PredictorPortSettings()

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
