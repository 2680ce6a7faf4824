"""The Kafka bridge: transactions topic -> online features -> predictor (V2) -> scored topic,
anomaly sink and dead-letter topic, at least once (or exactly once), nothing lost.

Modules: `messages` (wire format and checks), `batching` (size/time bounds), `batch` (one
micro-batch and its preparation), `backoff`, `breaker`, `v2_client`, `scoring` (the predictor's
contract), `state` (feature state and its changelog records), `restore`, `outputs`,
`delivery` (acknowledged sends, transactions, commits), `kafka_config`, `metrics` (Prometheus,
health), `loop` (the Bridge), `app` (assembly from settings: build_bridge, run_bridge),
`workers` (N bridge processes on one host), `producer` (`finrisk produce`), `cli` (both
commands). The benchmark and its one-call-per-message baseline are development tools
(finrisk.bench, in devtools/). See docs/bridge.md.

Nothing is imported here: `finrisk bridge --help` and every other command's parser load this
package, and must not wait for the bridge's libraries.
"""
