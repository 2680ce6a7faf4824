"""Prometheus metrics of the bridge, and the small HTTP server for /healthz, /readyz, /metrics."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)


class BatchHistogram(Collector):
    """A Prometheus histogram fed a whole batch of observations at once (numpy, one lock)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = np.array([*buckets, math.inf], dtype=np.float64)
        self._counts = np.zeros(len(self._bounds), dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: npt.ArrayLike) -> None:
        array = np.asarray(values, dtype=np.float64)
        if array.size == 0:
            return
        # Bucket i counts bounds[i-1] < v <= bounds[i] (Prometheus' "le").
        index = np.searchsorted(self._bounds, array, side="left")
        counts = np.bincount(index, minlength=len(self._bounds))
        with self._lock:
            self._counts += counts
            self._sum += float(array.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        buckets = [
            ("+Inf" if math.isinf(b) else repr(float(b)), float(c))
            for b, c in zip(self._bounds, cumulative, strict=True)
        ]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


class BridgeMetrics:
    """One registry per bridge (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "finrisk_bridge_messages",
            "Input messages handled, by outcome (scored, dead_lettered, replay_skipped)",
            ["outcome"],
            registry=r,
        )
        self.anomalies = Counter(
            "finrisk_bridge_anomalies", "Transactions flagged as anomalous", registry=r
        )
        self.errors = Counter(
            "finrisk_bridge_errors",
            "Errors by kind (unparseable, schema_invalid, model_rejected, endpoint, sink, "
            "produce, commit, restore)",
            ["kind"],
            registry=r,
        )
        self.batch_size = Histogram(
            "finrisk_bridge_batch_size",
            "Messages per micro-batch",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "finrisk_bridge_batch_seconds",
            "Time to score a batch and make its outputs durable",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_to_score = BatchHistogram(
            "finrisk_bridge_event_to_score_seconds",
            "From the input message's timestamp to its scored record being sent",
            _LATENCY_BUCKETS,
            r,
        )
        self.step_seconds = Histogram(
            "finrisk_bridge_step_seconds",
            "Time the loop spends per batch in each step (prepare, score_wait, sink, outputs, "
            "changelog, commit, transaction)",
            ["step"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "finrisk_bridge_consumer_lag",
            "Messages behind the partition's end, per assigned input partition",
            ["partition"],
            registry=r,
        )
        self.paused = Gauge(
            "finrisk_bridge_paused",
            "1 while consumption is paused (predictor or sink down)",
            registry=r,
        )
        self.backpressure = Gauge(
            "finrisk_bridge_backpressure",
            "1 while consumption waits for in-flight batches or the sink backlog to drain",
            registry=r,
        )
        self.in_flight = Gauge(
            "finrisk_bridge_in_flight_batches",
            "Batches prepared or sent and not yet durable",
            registry=r,
        )
        self.sink_backlog = Gauge(
            "finrisk_bridge_sink_backlog_rows",
            "Anomaly rows handed to the sink and not yet flushed",
            registry=r,
        )
        self.assigned = Gauge(
            "finrisk_bridge_assigned_partitions", "Input partitions assigned", registry=r
        )
        self.restored = Counter(
            "finrisk_bridge_state_restored_records",
            "State changelog records read back on partition assignment",
            registry=r,
        )
        self.checkpoints = Counter(
            "finrisk_bridge_checkpoints",
            "Batches that wrote the state changelog and committed input offsets",
            registry=r,
        )
        self.state_users = Gauge(
            "finrisk_bridge_state_users", "Users with feature state in memory", registry=r
        )
        self.throughput = Gauge(
            "finrisk_bridge_throughput", "Messages per second over the last interval", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Health:
    """Liveness (the loop ticks) and readiness (joined and scoring), set by the bridge loop."""

    def __init__(self, stale_after_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.stale_after_s = stale_after_s
        self._tick = clock()
        self.ready = False

    def tick(self) -> None:
        self._tick = self._clock()

    @property
    def live(self) -> bool:
        return self._clock() - self._tick < self.stale_after_s


class OpsServer:
    """/healthz, /readyz and /metrics on host:port, in a daemon thread."""

    def __init__(self, host: str, port: int, metrics: BridgeMetrics, health: Health) -> None:
        handler = _handler(metrics, health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bridge-ops-http", daemon=True
        )

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(metrics: BridgeMetrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = health.live
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif path == "/readyz":
                ok = health.ready and health.live
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would flood the log

    return Handler
