"""The Kafka bridge: transactions topic -> online features -> predictor (V2) -> scored topic,
anomaly sink and dead-letter topic, at least once (or exactly once), nothing lost.

- The loop and its parts: `loop` (the Bridge: life cycle, each turn), `runtime` (what the
  parts share), `stages` (a batch's state machine), `batch` (one micro-batch and its
  preparation), `batch_outputs` (its scores and records), `delivery_mode` with
  `at_least_once` and `exactly_once` (how a batch gets out and becomes durable), `rebalance`
  (the group's callbacks), `membership` (stalls, commit answers), `flow_control` (pausing,
  backpressure), `accounting` (metrics per batch, gauges).
- Kafka: `delivery` (acknowledged sends, transactions), `commits`, `restore` (the changelog
  read back), `kafka_config`, `records`, `dead_letters`.
- Messages and state: `messages` (wire format and checks; `wire_columns` its decoding pass),
  `batching` (size/time bounds), `state` (feature state and its changelog records), `dedup`,
  `outputs`.
- The predictor and the sink: `v2_client`, `backoff`, `breaker`, `scoring` (the predictor's
  contract), `binding` (each served version's column order, bound again when it changes),
  `sink_writer`.
- Around it: `metrics` (Prometheus, health), `app` (assembly from settings: build_bridge,
  run_bridge), `workers` (N bridge processes on one host), `producer` (`finrisk produce`),
  `cli` (both commands). The benchmark and its one-call-per-message baseline are development
  tools (finrisk.bench, in devtools/). See docs/bridge.md.

Nothing is imported here: `finrisk bridge --help` and every other command's parser load this
package, and must not wait for the bridge's libraries.
"""
