"""The real processes on loopback that the bridge's benchmark and integration tests drive.

- small models trained on synthetic data and registered in MLflow as champions (through
  `finrisk.registry`);
- `PredictorProcess`: `finrisk serve` for them, stoppable and restartable on the same port
  (the endpoint-down scenario);
- `BridgeProcess`: `finrisk bridge` configured by environment, as production runs it, which
  can be SIGTERMed or SIGKILLed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from finrisk.errors import FinriskError
from finrisk.registry import CHAMPION
from finrisk.stack import process

EXPERIMENT = "finrisk-bridge-local"


@dataclass(frozen=True)
class RegisteredModels:
    detector: str
    risk: str
    versions: dict[str, str]


def train_models(users: int = 200, days: int = 40, seed: int = 11) -> tuple[Any, Any]:
    """A small detector and risk model on synthetic data: seconds, not minutes. Each carries
    the reference profile of its training rows, as trained models do (scores in-sample here:
    the bridge's monitoring compares with them)."""
    from finrisk.features import history_snapshots, user_features
    from finrisk.features.snapshots import training_rows
    from finrisk.models import RiskModel
    from finrisk.monitoring.profile import reference_profile
    from finrisk.synthetic import generate

    transactions, population, _ = generate(users=users, days=days, seed=seed)
    detector = train_detector(transactions, seed)
    features = user_features(transactions)
    labels = population.set_index("user_id").loc[features.index, "is_risky"]
    rows, y = training_rows(features, labels, history_snapshots(transactions))
    risk = RiskModel(estimator="logistic", cv=3).fit(rows, y)
    probability = risk.risk_probability(rows)
    # No calendar phases: a user's row stands for a whole history (as finrisk.evaluation.runs).
    risk.profile_ = reference_profile(
        rows, probability, seed=seed, bands=list(risk.bands_.bands(probability))
    )
    return detector, risk


def train_detector(transactions: Any, seed: int, begin: int = 0) -> Any:
    """A small detector on `transactions` (with labels) from row `begin` (the rows before are
    history the features need), with the reference profile of its training rows (scores
    in-sample)."""
    from finrisk.features import transaction_features
    from finrisk.models import TransactionAnomalyDetector
    from finrisk.monitoring.profile import reference_profile
    from finrisk.schema import CATEGORY, CHANNEL, TIMESTAMP

    tx_features = transaction_features(transactions).iloc[begin:]
    trained = transactions.iloc[begin:]
    detector = TransactionAnomalyDetector(max_iter=40, negative_sample=0.2).fit(
        tx_features, trained["is_fraud"]
    )
    detector.profile_ = reference_profile(
        tx_features,
        detector.anomaly_score(tx_features),
        seed=seed,
        categories={name: trained[name] for name in (CATEGORY, CHANNEL)},
        threshold=detector.threshold_,
        times=trained[TIMESTAMP],
        score_times=trained[TIMESTAMP],
    )
    return detector


def register_champions(
    tracking_uri: str, detector_name: str, risk_name: str, detector: Any, risk: Any
) -> RegisteredModels:
    from finrisk import registry

    versions = {}
    for name, kind, model in ((detector_name, "detector", detector), (risk_name, "risk", risk)):
        _, uri = registry.log_model(model, kind, tracking_uri=tracking_uri, experiment=EXPERIMENT)
        version = registry.register(uri, name, {"purpose": "bridge"}, tracking_uri=tracking_uri)
        registry.set_alias(name, CHAMPION, version, tracking_uri=tracking_uri)
        versions[name] = version
    return RegisteredModels(detector_name, risk_name, versions)


class PredictorProcess:
    """`finrisk serve` for two registered models on 127.0.0.1:`port`, gRPC on `port` + 1 (the
    versions `alias` points at); restartable."""

    def __init__(
        self,
        models: RegisteredModels,
        tracking_uri: str,
        log: Path,
        port: int | None = None,
        alias: str = CHAMPION,
    ) -> None:
        self.models = models
        self.alias = alias
        self.tracking_uri = tracking_uri
        self.log = log
        self.port = port or process.free_port(run=2)
        self.grpc_port = self.port + 1
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> PredictorProcess:
        argv = [
            sys.executable,
            "-m",
            "finrisk",
            "serve",
            "--detector-uri",
            f"models:/{self.models.detector}@{self.alias}",
            "--risk-uri",
            f"models:/{self.models.risk}@{self.alias}",
            "--tracking-uri",
            self.tracking_uri,
            "--http-port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            "--reload-interval",
            "0",
        ]
        self._child = child = process.spawn(argv, self.log, {})

        def died() -> str | None:
            if child.poll() is None:
                return None
            return f"exited with {child.returncode}:\n{process.log_tail(self.log)}"

        process.wait_until(self.ready, timeout_s, "finrisk serve", failed=died)
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL) and wait until its port is free."""
        child, self._child = self._child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
        deadline = time.monotonic() + 10
        while process.port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.port_in_use(self.port):
            raise FinriskError(f"port {self.port} still busy after the predictor ended")

    def __enter__(self) -> PredictorProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def bridge_environment(
    bootstrap_servers: str,
    predictor_url: str,
    models: RegisteredModels,
    input_topic: str,
    name: str,
    **settings: Any,
) -> dict[str, str]:
    """FINRISK_BRIDGE__* for a bridge named `name` (its group; `name`.scored, `name`.dlq,
    `name`.monitoring)."""
    workers = int(settings.get("workers", 1))
    env = {
        "bootstrap_servers": bootstrap_servers,
        "input_topic": input_topic,
        "scored_topic": f"{name}.scored",
        "dlq_topic": f"{name}.dlq",
        "monitoring_topic": f"{name}.monitoring",
        "group_id": name,
        "predictor_url": predictor_url,
        "detector_model": models.detector,
        "risk_model": models.risk,
        "http_port": process.free_port(run=workers),  # worker i: port + i
        "sink": "none",
        **settings,
    }
    return {f"FINRISK_BRIDGE__{key.upper()}": str(value) for key, value in env.items()}


class BridgeProcess:
    """`finrisk bridge` in its own process, configured by FINRISK_BRIDGE__* variables."""

    def __init__(self, env: Mapping[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.env = dict(env)
        self.log = log
        self.args = args
        self.port = int(self.env["FINRISK_BRIDGE__HTTP_PORT"])
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> BridgeProcess:
        argv = [sys.executable, "-m", "finrisk", "bridge", *self.args]
        self.child = child = process.spawn(argv, self.log, self.env)

        def died() -> str | None:
            if child.poll() is None:
                return None
            return f"exited with {child.returncode}:\n{process.log_tail(self.log)}"

        # Every worker, not only the first: a worker's health server starts after its SIGTERM
        # handler, so a started bridge stops gracefully whichever worker a signal reaches.
        workers = range(int(self.env.get("FINRISK_BRIDGE__WORKERS", "1")))
        process.wait_until(
            lambda: all(self.get("/healthz", worker) == 200 for worker in workers),
            timeout_s,
            "finrisk bridge",
            died,
        )
        return self

    def get(self, path: str, worker: int = 0) -> int | None:
        try:
            url = f"http://127.0.0.1:{self.port + worker}{path}"
            return httpx.get(url, timeout=2).status_code
        except httpx.HTTPError:
            return None

    def metrics(self, worker: int = 0) -> dict[str, float]:
        """Every sample of a worker's /metrics (the only one's, without workers), keyed
        "name{label=value,...}" (labels sorted)."""
        text = httpx.get(f"http://127.0.0.1:{self.port + worker}/metrics", timeout=5).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def partitions_per_worker(self) -> list[int]:
        """Input partitions assigned to each worker now (none to one not serving yet: `start`
        waits for the first worker only)."""
        workers = int(self.env.get("FINRISK_BRIDGE__WORKERS", "1"))
        counts = []
        for i in range(workers):
            try:
                samples = self.metrics(i)
            except httpx.HTTPError:
                samples = {}
            counts.append(int(samples.get("finrisk_bridge_assigned_partitions", 0)))
        return counts

    def alive(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def kill(self) -> None:
        """SIGKILL: no batch finished, nothing committed, nothing closed."""
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGKILL)
            self.child.wait(30)

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait: the bridge finishes its batch, commits and leaves the group."""
        child = self.child
        if child is None:
            return 0
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
                raise FinriskError(
                    f"finrisk bridge ignored SIGTERM for {timeout_s:.0f} s"
                ) from None
        return int(child.returncode)

    def __enter__(self) -> BridgeProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.alive():
            self.kill()
