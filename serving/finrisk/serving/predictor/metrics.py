"""Prometheus metrics of the predictor, on the default registry that /metrics serves.

kserve adds its own per-stage histograms (request_preprocess_seconds, request_predict_seconds,
request_postprocess_seconds) to the same registry.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "finrisk_predictor_requests_total",
    "Inference requests by model, protocol and HTTP status",
    ["model", "protocol", "status"],
)
ROWS = Counter("finrisk_predictor_rows_total", "Rows scored", ["model"])
ANOMALIES = Counter(
    "finrisk_predictor_anomalies_total", "Rows flagged as anomalous (detectors)", ["model"]
)
LATENCY = Histogram(
    "finrisk_predictor_request_seconds",
    "Inference request latency inside the server (parse, score, encode)",
    ["model", "protocol"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
MODEL_VERSION = Gauge(
    "finrisk_predictor_model_version", "Registry version currently served", ["model"]
)
RELOADS = Counter(
    "finrisk_predictor_reloads_total",
    "Registry checks for a new version, by outcome (changed, unchanged, failed)",
    ["model", "outcome"],
)
