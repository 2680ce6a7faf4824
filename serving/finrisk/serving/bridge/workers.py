"""`finrisk bridge --workers N`: N bridge processes in one consumer group on one host.

One bridge is one Python thread of work (the GIL), so on a host with several cores N processes
score up to N times as fast; Kafka spreads the input partitions over them as over replicas, and
each restores the feature state of the partitions it gets. In Kubernetes, scale the Deployment's
replicas instead: one worker per pod keeps probes and metrics one per pod.

Worker i differs from the settings given in two things only: its health/metrics port is
`http_port + i` (0 stays 0: any free port, logged), and in exactly-once mode its transactional id is
"<id>-<i>", stable across restarts as the id of one instance must be.

The supervisor forwards SIGTERM and SIGINT to the workers (each finishes its batch, commits and
leaves the group) and returns their stats summed. A worker that fails makes the supervisor stop
the others the same graceful way and fail, naming it: their batches are committed, and the
failed worker's uncommitted ones are scored again after a restart. Workers whose supervisor dies
(even by SIGKILL) stop gracefully by themselves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
from multiprocessing.connection import wait
from types import FrameType
from typing import Any, cast

from finrisk.errors import FinriskError
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.loop import RunStats
from finrisk.settings import Settings

log = logging.getLogger("finrisk.bridge")

_WORKER_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[worker {index}]: %(message)s"
# How long the supervisor waits for a finished worker's stats to come through the queue.
_STATS_TIMEOUT_S = 10.0


def worker_settings(settings: Settings, index: int, workers: int) -> Settings:
    """The settings of worker `index` of `workers`."""
    bridge = settings.bridge
    port = bridge.http_port
    if port and port + workers - 1 > 65_535:
        raise FinriskError(
            f"{workers} workers need health/metrics ports {port}..{port + workers - 1}: "
            "past 65535; choose a lower http_port"
        )
    update: dict[str, Any] = {"workers": 1, "http_port": port + index if port else 0}
    if bridge.exactly_once:
        update["transactional_id"] = f"{kafka_config.transactional_id(bridge)}-{index}"
    return settings.model_copy(update={"bridge": bridge.model_copy(update=update)})


def run_workers(settings: Settings, *, idle_exit_s: float | None = None) -> RunStats:
    """Run `settings.bridge.workers` bridges, each in its own process, until SIGTERM or SIGINT
    (or, with `idle_exit_s`, until each has been idle that long). Call from the main thread."""
    workers = settings.bridge.workers
    every = [worker_settings(settings, i, workers) for i in range(workers)]
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[dict[str, int]] = context.Queue()
    level = logging.getLogger().getEffectiveLevel()
    processes = [
        context.Process(
            target=_worker,
            args=(i, worker.model_dump_json(), idle_exit_s, level, results),
            name=f"finrisk-bridge-worker-{i}",
        )
        for i, worker in enumerate(every)
    ]
    stopping = threading.Event()

    def stop_all() -> None:
        stopping.set()
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker's graceful stop

    def forward(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping %d workers", signal.Signals(signum).name, workers)
        stop_all()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    failed: list[str] = []
    try:
        for process in processes:
            process.start()
        log.info("started %d bridge workers: pids %s", workers, [p.pid for p in processes])
        running = {process.sentinel: (i, process) for i, process in enumerate(processes)}
        while running:
            for sentinel in wait(list(running)):
                i, process = running.pop(cast(int, sentinel))
                process.join()
                code = process.exitcode
                # SIGTERM before the worker set its handler: it had nothing to commit yet.
                if code == 0 or (stopping.is_set() and code == -signal.SIGTERM):
                    continue
                failed.append(f"worker {i} exited with {code}")
                if not stopping.is_set():
                    log.error("bridge worker %d exited with %s: stopping the others", i, code)
                    stop_all()
    finally:
        stop_all()
        for process in processes:
            process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = _sum_stats(results, workers - len(failed))
    if failed:
        raise FinriskError(
            f"bridge {'; '.join(failed)} (the others finished their batches and committed; "
            f"scored so far: {stats.scored})"
        )
    return stats


def _sum_stats(results: multiprocessing.Queue[dict[str, int]], expected: int) -> RunStats:
    total = RunStats()
    for _ in range(expected):
        try:
            part = results.get(timeout=_STATS_TIMEOUT_S)
        except queue.Empty:
            break
        total.add(RunStats(**part))
    return total


def _worker(
    index: int,
    settings_json: str,
    idle_exit_s: float | None,
    level: int,
    results: multiprocessing.Queue[dict[str, int]],
) -> None:
    from finrisk.serving.bridge.app import run_bridge

    logging.basicConfig(level=level, format=_WORKER_LOG_FORMAT.format(index=index))
    _stop_when_orphaned()
    try:
        stats = run_bridge(Settings.model_validate_json(settings_json), idle_exit_s=idle_exit_s)
    except FinriskError as exc:  # a clear message, as `finrisk bridge` alone gives it
        log.error("%s", exc)
        sys.exit(1)
    results.put(stats.as_dict())


def _stop_when_orphaned() -> None:
    """SIGTERM to this worker (its graceful stop) once the supervisor is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
