"""MLflow tracking server: SQLite backend (or PostgreSQL) and proxied artifacts under the home."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import httpx

from finrisk.settings import LOOPBACK
from finrisk.stack.service import Service


class MLflowServer(Service):
    name = "mlflow"
    start_timeout = 120.0

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.mlflow.port,)

    @property
    def address(self) -> str:
        return self.settings.mlflow.tracking_uri

    def backend_store_uri(self) -> str:
        return self.settings.mlflow.backend_store_uri or f"sqlite:///{self.dir / 'mlflow.db'}"

    def command(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            LOOPBACK,
            "--port",
            str(self.settings.mlflow.port),
            "--workers",
            "1",
            "--backend-store-uri",
            self.backend_store_uri(),
            # Proxied artifacts: clients and predictors need only the tracking URI.
            "--artifacts-destination",
            str(self.dir / "artifacts"),
            "--serve-artifacts",
        ]

    def environment(self) -> Mapping[str, str]:
        # Job execution starts eight runner workers (3+ GB); finrisk schedules nothing there.
        return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.address}/health", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
