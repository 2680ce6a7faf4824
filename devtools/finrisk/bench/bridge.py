"""`finrisk bench bridge`: end-to-end throughput and event-to-score latency, against the seed's
one-call-per-message consumer, in one run on the real broker and the real predictor.

1. throughput: `count` transactions are produced to a fresh topic first; a `finrisk bridge`
   process (with `workers`, that many in one group) then drains the backlog, until its group
   has committed every input offset. Rate = scored transactions (each counted once) / time
   between the first and the last scored record's timestamp (set by the bridge's producer when
   it sends the record), not counting the records stamped in the interval's first
   millisecond, from when every worker holds partitions (the rate over the whole drain, and
   the start-up before it, are shown apart). The scored topic is read after the drain, so the
   reading takes no CPU from the bridge.
2. the same backlog through the one-call-per-message consumer, bounded in messages and time,
   in as many processes as the bridge has workers (fixed partitions each); their rates add.
3. latency: a fresh bridge on a fresh topic, warmed up (JOIN_RECORDS, then RAMP_S seconds at
   the offered rate), then transactions offered at `latency_rate` per second for
   `latency_seconds`; event-to-score latency per transaction = arrival of its scored record
   downstream - the input message's timestamp.

Every process and topic is its own (uuid names), and the topics are deleted at the end; figures
are printed, never asserted.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, TopicPartition

from finrisk.bench.history import AT, COMMIT, LOAD, Column, Headline, Run
from finrisk.bench.local_processes import (
    BridgeProcess,
    RegisteredModels,
    bridge_environment,
)
from finrisk.errors import FinriskError
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce, stream_producer, synthetic_records
from finrisk.settings import Settings
from finrisk.sinks import open_sink
from finrisk.stack import topics

# The latency run: this many records at once first (the bridge joins its group and scores
# them), then the offered rate for RAMP_S seconds before the measured transactions, which
# follow without a pause (a fresh bridge, broker and predictor take a second or two to settle).
JOIN_RECORDS = 200
RAMP_S = 2.0

log = logging.getLogger("finrisk.bench")


@dataclass(frozen=True)
class Endpoint:
    url: str
    models: RegisteredModels


class StampSpan:
    """The span of the scored records' timestamps, and the rate of records across it."""

    def __init__(self, stamps: list[int] | None = None) -> None:
        self.stamps: list[int] = stamps or []

    def add(self, stamp_ms: int) -> None:
        self.stamps.append(stamp_ms)

    @property
    def count(self) -> int:
        return len(self.stamps)

    @property
    def first_ms(self) -> int:
        return min(self.stamps, default=0)

    @property
    def last_ms(self) -> int:
        return max(self.stamps, default=0)

    @property
    def seconds(self) -> float:
        return (self.last_ms - self.first_ms) / 1000

    def rate(self) -> float:
        """Records per second after the first millisecond (whose records open the span), over
        the span."""
        seconds = self.seconds
        if seconds <= 0:
            return float("inf")
        return (self.count - self.stamps.count(self.first_ms)) / seconds

    def since(self, start_ms: float) -> StampSpan:
        """The span of the records stamped at `start_ms` or later."""
        return StampSpan([stamp for stamp in self.stamps if stamp >= start_ms])


class ScoredWatcher:
    """Counts the transactions scored as their records arrive (read_committed), with the
    records' own (producer) timestamps, and their event-to-arrival latencies when `latency`.
    A transaction scored again (at least once: a rebalance replays what was not yet committed)
    counts once, in `duplicates` after that."""

    def __init__(self, settings: Settings, topic: str, *, latency: bool) -> None:
        self.consumer = Consumer(
            {
                **kafka_config.client_config(settings),
                "group.id": f"bench-watch-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.consumer.subscribe([topic])
        self.latency = latency
        self.span = StampSpan()
        self.seen: set[str] = set()
        self.duplicates = 0
        self.latency_ms: dict[str, float] = {}  # by transaction id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ScoredWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            # poll returns as soon as one record is there (consume would wait out its timeout
            # for a full batch, adding that wait to every latency); then take what is buffered.
            first = self.consumer.poll(0.05)
            if first is None:
                continue
            now_ms = time.time() * 1000
            batch = [first, *self.consumer.consume(5_000, 0)]
            for msg in batch:
                if msg.error() is not None:
                    continue
                doc = orjson.loads(msg.value() or b"{}")
                tx_id = doc["transaction_id"]
                if tx_id in self.seen:
                    self.duplicates += 1
                    continue
                self.seen.add(tx_id)
                self.span.add(msg.timestamp()[1])
                if self.latency:
                    created = doc["scored_at_ms"] - doc["latency_ms"]
                    self.latency_ms[tx_id] = now_ms - created

    @property
    def count(self) -> int:
        return self.span.count

    def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count >= n

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.consumer.close()


def _wait_for_settled_group(bridge: BridgeProcess, partitions: int, timeout_s: float) -> None:
    """Until every worker reads some of the partitions and all are read: workers that join
    one by one move partitions about (a rebalance) for a second or two after the first join."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = bridge.partitions_per_worker()
        if sum(counts) == partitions and min(counts) > 0:
            return
        if time.monotonic() > deadline:
            raise FinriskError(f"the bridge's workers hold {counts} of {partitions} partitions")
        time.sleep(0.1)


def _wait_for_commits(
    settings: Settings,
    group: str,
    topic: str,
    partitions: int,
    timeout_s: float,
    bridge: BridgeProcess,
) -> None:
    """Until `group` has committed every input message: the bridge commits only what it has
    scored and made durable, so every scored record is in Kafka then."""
    reader = Consumer(
        {**kafka_config.client_config(settings), "group.id": group, "enable.auto.commit": False}
    )
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        ends = [reader.get_watermark_offsets(tp, timeout=10)[1] for tp in wanted]
        deadline = time.monotonic() + timeout_s
        while True:
            committed = reader.committed(wanted, timeout=10)
            if all(tp.offset >= end for tp, end in zip(committed, ends, strict=True)):
                return
            if time.monotonic() > deadline:
                raise FinriskError(
                    f"the bridge committed {[tp.offset for tp in committed]} of {ends} within "
                    f"{timeout_s:.0f} s; log {bridge.log}"
                )
            time.sleep(0.1)
    finally:
        reader.close()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p95_ms": round(float(np.percentile(arr, 95)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "max_ms": round(float(arr.max()), 1),
    }


def _baseline_worker(
    settings_json: str, queue: Any, max_messages: int, max_seconds: float, partitions: list[int]
) -> None:
    from finrisk.bench.one_per_message import run_one_per_message

    settings = Settings.model_validate_json(settings_json)
    queue.put(
        run_one_per_message(
            settings, max_messages=max_messages, max_seconds=max_seconds, partitions=partitions
        )
    )


def run_baseline(
    settings: Settings, max_messages: int, max_seconds: float, *, processes: int, partitions: int
) -> dict[str, Any]:
    """The one-call-per-message consumer in `processes` processes of its own, like the bridge's
    workers, each on a fixed share of the `partitions` and of `max_messages`; their rates add."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(
            target=_baseline_worker,
            args=(
                settings.model_dump_json(),
                queue,
                -(-max_messages // processes),
                max_seconds,
                list(range(j, partitions, processes)),
            ),
        )
        for j in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        parts: list[dict[str, Any]] = [
            queue.get(timeout=max_seconds + 120) for _ in range(processes)
        ]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    return {
        "processes": processes,
        "scored": sum(part["scored"] for part in parts),
        "seconds": max(part["seconds"] for part in parts),
        "tx_per_s": round(sum(part["tx_per_s"] for part in parts), 1),
    }


def sink_settings(settings: Settings, sink: str) -> dict[str, Any]:
    """Bridge settings storing anomalies as `sink` says, somewhere of the run's own: BigQuery
    (the settings' endpoint, else the local emulator) in a fresh dataset, or a fresh SQLite
    file."""
    run = uuid.uuid4().hex[:8]
    if sink == "bigquery":
        bridge = settings.bridge
        return {
            "sink": "bigquery",
            "bigquery_project": bridge.bigquery_project or settings.bigquery.project,
            "bigquery_endpoint": bridge.bigquery_endpoint or settings.bigquery.endpoint,
            "bigquery_dataset": f"bench_bridge_{run}",
        }
    if sink == "local":
        return {"sink": "local", "local_sink_path": str(settings.home / "bench" / f"{run}.sqlite")}
    return {"sink": "none"}


def _stored_anomalies(settings: Settings, bridge_settings: dict[str, Any]) -> int | None:
    """How many anomaly rows the run's sink holds (both sides and the latency run wrote there:
    a check that the sink really was written)."""
    bridge = settings.bridge.model_copy(update=bridge_settings)
    sink = open_sink(settings.model_copy(update={"bridge": bridge}))
    if sink is None:
        return None
    try:
        return len(sink.read())
    finally:
        sink.close()


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures a run keeps in the benchmark's history."""
    bridge = result["bridge"]
    return {
        "tx_per_s": bridge["tx_per_s"],
        "tx_per_s_until_committed": bridge["tx_per_s_until_committed"],
        "one_call_per_message_tx_per_s": result["one_call_per_message"]["tx_per_s"],
        "speedup": result.get("speedup"),
        "p99_ms_at_offered": result["latency"]["event_to_score"].get("p99_ms"),
        "anomalies_stored": result.get("sink", {}).get("anomalies_stored"),
        "monitoring_on_tx_per_s": result["monitoring"]["tx_per_s_on"],
        "monitoring_off_tx_per_s": result["monitoring"]["tx_per_s_off"],
        "monitoring_cost": result["monitoring"]["cost"],
        "rest_tx_per_s": result["transports"]["tx_per_s"]["rest"],
        "grpc_tx_per_s": result["transports"]["tx_per_s"]["grpc"],
    }


def _p99_at_offered(run: Run) -> str:
    p99 = run["figures"]["p99_ms_at_offered"]
    shown = "-" if p99 is None else f"{p99:g} ms"
    return f"{shown} at {run['settings']['latency_rate']:,.0f}/s"


def _monitoring(run: Run) -> str:
    on = run["figures"].get("monitoring_on_tx_per_s")
    off = run["figures"].get("monitoring_off_tx_per_s")
    if on is None or off is None:
        return "-"  # runs from before online monitoring
    return f"{on:,.0f} / {off:,.0f}"


def _transports(run: Run) -> str:
    rest, grpc = run["figures"].get("rest_tx_per_s"), run["figures"].get("grpc_tx_per_s")
    if rest is None or grpc is None:
        return "-"  # runs from before the gRPC transport
    return f"{rest:,.0f} / {grpc:,.0f}"


# What docs/bridge.md shows (`--history`).
HISTORY_COLUMNS = (
    AT,
    COMMIT,
    Column("sink", lambda run: run["settings"]["sink"]),
    Column("workers", lambda run: str(run["settings"]["workers"])),
    Column("bridge tx/s", lambda run: f"{run['figures']['tx_per_s']:,.0f}"),
    Column(
        "one call per message tx/s",
        lambda run: f"{run['figures']['one_call_per_message_tx_per_s']:,.0f}",
    ),
    Column("speedup", lambda run: f"{run['figures']['speedup'] or '-'}x"),
    Column("p99 at offered", _p99_at_offered),
    Column("monitoring on / off tx/s", _monitoring),
    Column("REST / gRPC tx/s", _transports),
    LOAD,
)

COMPARES = "the bridge end to end against a consumer making one call per model per message"


def headlines(run: Run) -> list[Headline]:
    """A run's figures beside their alternatives, for the summary of every benchmark."""
    figures, settings = run["figures"], run["settings"]
    workers = f"{settings['workers']} worker{'s' if settings['workers'] > 1 else ''}"
    return [
        Headline(
            f"end to end, {workers}, sink {settings['sink']}, backlog of {settings['count']:,}",
            figures["tx_per_s"],
            "tx/s",
            "one call per model per message, as many processes",
            figures["one_call_per_message_tx_per_s"],
        ),
        Headline(
            f"end to end with online monitoring, {workers}, sink {settings['sink']}",
            figures.get("monitoring_on_tx_per_s"),
            "tx/s",
            "the same bridge with monitoring off",
            figures.get("monitoring_off_tx_per_s"),
        ),
        Headline(
            f"end to end over gRPC, {workers}, sink {settings['sink']}",
            figures.get("grpc_tx_per_s"),
            "tx/s",
            "the same bridge over REST (binary tensors)",
            figures.get("rest_tx_per_s"),
        ),
        Headline(
            f"p99 event-to-score at {settings['latency_rate']:,.0f} tx/s offered",
            figures["p99_ms_at_offered"],
            "ms",
        ),
    ]


def _drain(
    settings: Settings,
    endpoint: Endpoint,
    topic: str,
    name: str,
    bridge_settings: dict[str, Any],
    *,
    count: int,
    partitions: int,
    timeout_s: float,
) -> dict[str, Any]:
    """One bridge (its own group) drains the backlog in `topic`: its throughput."""
    logs = settings.home / "bench"
    env = bridge_environment(
        kafka_config.bootstrap_servers(settings),
        endpoint.url,
        endpoint.models,
        topic,
        name,
        **bridge_settings,
    )
    started_ms = time.time() * 1000
    bridge = BridgeProcess(env, logs / f"{name}.log").start()
    try:
        _wait_for_settled_group(bridge, partitions, timeout_s)
        settled_ms = time.time() * 1000
        _wait_for_commits(settings, name, topic, partitions, timeout_s, bridge)
        committed_ms = time.time() * 1000
    finally:
        bridge.terminate()
    # Read after the drain (the records keep the time they were sent): a reader running
    # beside the bridge would take CPU from it on this 2-core machine.
    watcher = ScoredWatcher(settings, f"{name}.scored", latency=False).start()
    try:
        if not watcher.wait_for(count, timeout_s):
            raise FinriskError(f"the scored topic holds {watcher.count} of {count} transactions")
    finally:
        watcher.stop()
    # Workers joining one by one move partitions about once; a running service sees the rate
    # after that, and the whole drain's rate is shown too.
    settled = watcher.span.since(settled_ms)
    batched_rate = settled.rate() if settled.seconds > 0 else watcher.span.rate()
    return {
        "scored": watcher.count,
        "scored_again": watcher.duplicates,
        "first_score_after_start_s": round((watcher.span.first_ms - started_ms) / 1000, 2),
        "group_settled_after_start_s": round((settled_ms - started_ms) / 1000, 2),
        "drain_seconds": round(watcher.span.seconds, 3),
        "tx_per_s": round(batched_rate, 1),
        "tx_per_s_whole_drain": round(watcher.span.rate(), 1),
        # From the first record sent to all input committed (so every output acknowledged),
        # seen to within ~0.1 s: the producer may still be draining its queue after the last
        # send.
        "tx_per_s_until_committed": round(
            watcher.count / max((committed_ms - watcher.span.first_ms) / 1000, 1e-3), 1
        ),
    }


def run(
    settings: Settings,
    endpoint: Endpoint,
    *,
    count: int,
    users: int,
    days: int,
    seed: int,
    partitions: int,
    bridge_settings: dict[str, Any],
    baseline_messages: int,
    baseline_seconds: float,
    latency_rate: float,
    latency_seconds: float,
    timeout_s: float,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    try:
        bootstrap = kafka_config.bootstrap_servers(settings)
        logs = settings.home / "bench"
        logs.mkdir(parents=True, exist_ok=True)
        latency_count = int(latency_rate * latency_seconds)
        ramp = int(latency_rate * RAMP_S)
        records = synthetic_records(count + JOIN_RECORDS + ramp + latency_count, users, days, seed)
        producer_conf = kafka_config.client_config(settings)
        result: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
            "input": {"transactions": count, "users": users, "partitions": partitions},
            "predictor": {"url": endpoint.url, **endpoint.models.versions},
        }

        # 1. Throughput on a backlog.
        topic = f"bench.{run_id}.tx"
        kafka_config.ensure_topic(settings, topic, partitions)
        sent = produce(producer_conf, topic, records[:count])
        result["produce_backlog"] = sent.as_dict()
        batched = _drain(
            settings,
            endpoint,
            topic,
            f"bench-{run_id}-batched",
            bridge_settings,
            count=count,
            partitions=partitions,
            timeout_s=timeout_s,
        )
        result["bridge"] = {**batched, "settings": bridge_settings}
        batched_rate = batched["tx_per_s"]
        # The same backlog with online monitoring switched the other way, then as deployed
        # again: on, off, off, on (or the reverse). A later drain of one backlog runs warmer
        # (page cache, predictor): the first run here measured "off" 33% faster after "on".
        monitoring = bool(bridge_settings.get("monitoring", True))
        rates: dict[bool, list[float]] = {monitoring: [batched_rate], not monitoring: []}
        for switched, label in ((True, "a"), (True, "b"), (False, "c")):
            mode = not monitoring if switched else monitoring
            again = _drain(
                settings,
                endpoint,
                topic,
                f"bench-{run_id}-monitoring-{label}",
                {**bridge_settings, "monitoring": mode},
                count=count,
                partitions=partitions,
                timeout_s=timeout_s,
            )
            rates[mode].append(again["tx_per_s"])
        on, off = (sum(rates[True]) / 2, sum(rates[False]) / 2)
        result["monitoring"] = {
            "order": "on, off, off, on" if monitoring else "off, on, on, off",
            "tx_per_s_on_runs": rates[True],
            "tx_per_s_off_runs": rates[False],
            "tx_per_s_on": round(on, 1),
            "tx_per_s_off": round(off, 1),
            "cost": round(1 - on / off, 4) if off else None,
        }

        # The same backlog with the bridge's other transport to the predictor (REST or gRPC),
        # in the same order: as deployed, other, other, as deployed.
        transport = str(bridge_settings.get("transport", "rest"))
        other = "grpc" if transport == "rest" else "rest"
        by_transport: dict[str, list[float]] = {transport: [], other: []}
        for via, label in ((other, "a"), (other, "b"), (transport, "c")):
            again = _drain(
                settings,
                endpoint,
                topic,
                f"bench-{run_id}-transport-{label}",
                {**bridge_settings, "transport": via},
                count=count,
                partitions=partitions,
                timeout_s=timeout_s,
            )
            by_transport[via].append(again["tx_per_s"])
        by_transport[transport].insert(0, batched_rate)
        result["transports"] = {
            "order": f"{transport}, {other}, {other}, {transport}",
            "tx_per_s_runs": by_transport,
            "tx_per_s": {
                via: round(sum(rates) / len(rates), 1) for via, rates in by_transport.items()
            },
        }

        # 2. The seed's way on the same backlog.
        baseline_settings = settings.model_copy(
            update={
                "bridge": settings.bridge.model_copy(
                    update={
                        "bootstrap_servers": bootstrap,
                        "input_topic": topic,
                        "scored_topic": f"bench-{run_id}-single.scored",
                        "group_id": f"bench-{run_id}-single",
                        "predictor_url": endpoint.url,
                        "detector_model": endpoint.models.detector,
                        "risk_model": endpoint.models.risk,
                        **bridge_settings,
                    }
                )
            }
        )
        single = run_baseline(
            baseline_settings,
            baseline_messages,
            baseline_seconds,
            processes=baseline_settings.bridge.workers,
            partitions=partitions,
        )
        result["one_call_per_message"] = single
        if single["tx_per_s"]:
            result["speedup"] = round(batched_rate / single["tx_per_s"], 1)

        # 3. Event-to-score latency at a fixed offered rate.
        topic = f"bench.{run_id}.lat"
        kafka_config.ensure_topic(settings, topic, partitions)
        name = f"bench-{run_id}-latency"
        watcher = ScoredWatcher(settings, f"{name}.scored", latency=True).start()
        env = bridge_environment(
            bootstrap, endpoint.url, endpoint.models, topic, name, **bridge_settings
        )
        bridge = BridgeProcess(env, logs / f"{name}.log").start()
        try:
            feed = stream_producer(producer_conf)  # one warm connection for warm-up and run
            produce(feed, topic, records[count : count + JOIN_RECORDS])
            if not watcher.wait_for(JOIN_RECORDS, timeout_s):
                raise FinriskError(f"the latency bridge did not warm up; log in {logs}")
            _wait_for_settled_group(bridge, partitions, timeout_s)
            offered = produce(feed, topic, records[count + JOIN_RECORDS :], rate=latency_rate)
            total = JOIN_RECORDS + ramp + latency_count
            if not watcher.wait_for(total, timeout_s):
                raise FinriskError(
                    f"the latency bridge scored {watcher.count} of {total}; log {bridge.log}"
                )
        finally:
            bridge.terminate()
            watcher.stop()
        measured = [
            watcher.latency_ms[orjson.loads(value)["transaction_id"]]
            for _, value in records[count + JOIN_RECORDS + ramp :]
        ]
        result["latency"] = {
            "offered_tx_per_s": latency_rate,
            "achieved_offer_tx_per_s": round(offered.rate, 1),
            "ramp_seconds": RAMP_S,
            "transactions": latency_count,
            "event_to_score": _percentiles(measured),
        }
        result["sink"] = {
            "kind": bridge_settings.get("sink", "none"),
            "anomalies_stored": _stored_anomalies(settings, bridge_settings),
        }
        result["targets"] = {
            "tx_per_s_at_least_20000": batched_rate >= 20_000,
            "tx_per_s_at_least_40000_with_the_bigquery_sink": batched_rate >= 40_000
            and bridge_settings.get("sink") == "bigquery",
            "speedup_at_least_100x": result.get("speedup", 0) >= 100,
            "p99_under_250_ms_at_5k": result["latency"]["event_to_score"].get("p99_ms", 1e9) < 250
            and latency_rate >= 5_000,
        }
        return result
    finally:
        # The run's own topics (inputs, outputs, changelogs): nothing is left on the broker.
        try:
            topics.delete_topics(settings, [f"bench.{run_id}.", f"bench-{run_id}-"])
        except FinriskError as exc:  # said, without hiding why the run itself may have failed
            log.warning(
                "the benchmark's topics (bench.%s.*, bench-%s-*) were not deleted: %s",
                run_id,
                run_id,
                exc,
            )
