"""The local service stack: Kafka, MLflow and the BigQuery emulator on 127.0.0.1 (and, when
named, the predictor, a Kubernetes API server and the dashboard)."""

from __future__ import annotations

from collections.abc import Iterable

from finrisk.errors import FinriskError
from finrisk.settings import Settings
from finrisk.stack.bigquery_emulator import BigQueryEmulator
from finrisk.stack.dashboard import Dashboard
from finrisk.stack.kafka import Kafka
from finrisk.stack.kube import KubeApiServer
from finrisk.stack.mlflow_server import MLflowServer
from finrisk.stack.predictor import Predictor
from finrisk.stack.service import Service, ServiceStatus

SERVICE_TYPES: dict[str, type[Service]] = {
    cls.name: cls
    for cls in (Kafka, MLflowServer, BigQueryEmulator, Predictor, KubeApiServer, Dashboard)
}

__all__ = ["SERVICE_TYPES", "Service", "ServiceStatus", "Stack"]


class Stack:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.services = {name: cls(self.settings) for name, cls in SERVICE_TYPES.items()}

    def select(
        self, names: Iterable[str] | None = None, *, everything: bool = False
    ) -> list[Service]:
        """The named services; with None the default ones (or all, with `everything`).

        An empty list selects nothing, so code that stops "what it started" can never stop all.
        """
        if names is None:
            return [s for s in self.services.values() if everything or s.default]
        names = list(names)
        unknown = sorted(set(names) - set(self.services))
        if unknown:
            raise FinriskError(
                f"unknown service {', '.join(unknown)}; choose from {', '.join(self.services)}"
            )
        return [service for name, service in self.services.items() if name in set(names)]

    def up(self, names: Iterable[str] | None = None) -> dict[str, bool]:
        return {service.name: service.up() for service in self.select(names)}

    def down(self, names: Iterable[str] | None = None) -> dict[str, bool]:
        selected = self.select(names, everything=True)
        return {service.name: service.down() for service in reversed(selected)}

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        return [service.status() for service in self.select(names, everything=True)]
