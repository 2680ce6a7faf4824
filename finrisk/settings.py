"""Typed settings: defaults, then a YAML file named by FINRISK_CONFIG, then FINRISK_* environment.

Nested fields take a double underscore in the environment: FINRISK_KAFKA__PORT=29092.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from finrisk.errors import FinriskError

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
