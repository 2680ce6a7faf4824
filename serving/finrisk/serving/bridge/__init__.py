"""The Kafka bridge: transactions topic -> online features -> predictor (V2) -> scored topic,
anomaly sink and dead-letter topic, at least once (or exactly once), nothing lost.

Modules: `messages` (wire format and checks), `batching` (size/time bounds), `batch` (one
micro-batch and its preparation), `backoff`, `breaker`, `v2_client`, `scoring` (the predictor's
contract), `state` (feature state and its changelog records), `restore`, `outputs`,
`delivery` (acknowledged sends, transactions, commits), `kafka_config`, `metrics` (Prometheus,
health), `loop` (the Bridge), `app` (assembly from settings), `workers` (N bridge processes
on one host), `producer` (`finrisk produce`),
`baseline` (one call per message), `benchmark`, `local_processes` (predictor and bridge
processes for the benchmark and tests). See docs/bridge.md.
"""

from finrisk.serving.bridge.app import build_bridge, run_bridge
from finrisk.serving.bridge.loop import Bridge, RunStats

__all__ = ["Bridge", "RunStats", "build_bridge", "run_bridge"]
