"""`finrisk serve` as a stack service: the champions of the local MLflow on 127.0.0.1.

Not started by a plain `finrisk stack up` (there is nothing to serve before a model is
registered); `finrisk stack up predictor` and the demo start it, `finrisk stack down` ends it.
REST on FINRISK_PREDICTOR__PORT, gRPC (Open Inference Protocol) on FINRISK_PREDICTOR__GRPC_PORT.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import httpx

from finrisk.settings import LOOPBACK
from finrisk.stack.service import Service


class Predictor(Service):
    name = "predictor"
    default = False
    start_timeout = 180.0

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.predictor.port, self.settings.predictor.grpc_port)

    @property
    def address(self) -> str:
        return self.settings.predictor.url

    def command(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "finrisk",
            "serve",
            "--host",
            LOOPBACK,
            "--http-port",
            str(self.settings.predictor.port),
            "--grpc-port",
            str(self.settings.predictor.grpc_port),
            "--tracking-uri",
            self.settings.mlflow.tracking_uri,
            # A new champion from another pipeline run is picked up within seconds.
            "--reload-interval",
            "10",
        ]

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.address}/v2/health/ready", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
