"""The local service stack: Kafka, MLflow and the BigQuery emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterable

from finrisk.errors import FinriskError
from finrisk.settings import Settings
from finrisk.stack.bigquery_emulator import BigQueryEmulator
from finrisk.stack.kafka import Kafka
from finrisk.stack.mlflow_server import MLflowServer
from finrisk.stack.service import Service, ServiceStatus

SERVICE_TYPES: dict[str, type[Service]] = {
    cls.name: cls for cls in (Kafka, MLflowServer, BigQueryEmulator)
}

__all__ = ["SERVICE_TYPES", "Service", "ServiceStatus", "Stack"]


class Stack:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.services = {name: cls(self.settings) for name, cls in SERVICE_TYPES.items()}

    def select(self, names: Iterable[str] | None = None) -> list[Service]:
        if not names:
            return list(self.services.values())
        unknown = sorted(set(names) - set(self.services))
        if unknown:
            raise FinriskError(
                f"unknown service {', '.join(unknown)}; choose from {', '.join(self.services)}"
            )
        return [service for name, service in self.services.items() if name in set(names)]

    def up(self, names: Iterable[str] | None = None) -> dict[str, bool]:
        return {service.name: service.up() for service in self.select(names)}

    def down(self, names: Iterable[str] | None = None) -> dict[str, bool]:
        return {service.name: service.down() for service in reversed(self.select(names))}

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        return [service.status() for service in self.select(names)]
