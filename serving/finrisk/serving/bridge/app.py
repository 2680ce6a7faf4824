"""Assemble a bridge from settings, and run it until SIGTERM."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from types import FrameType
from typing import Any

from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.binding import RestartToBind
from finrisk.serving.bridge.breaker import CircuitBreaker
from finrisk.serving.bridge.grpc_client import GrpcV2Client, grpc_address
from finrisk.serving.bridge.loop import Bridge, RunStats
from finrisk.serving.bridge.scoring import V2Scorer
from finrisk.serving.bridge.shadow import Shadow
from finrisk.serving.bridge.v2_client import V2Client
from finrisk.settings import BridgeSettings, Settings
from finrisk.sinks import open_sink

log = logging.getLogger("finrisk.bridge")
# Tracked objects (messages, transactions, scores) allocated per batch message and kept until
# the batch is committed: the collector's first generation is sized to a few batches, so it
# runs once every few batches rather than many times in each (at Python's 700 the bridge's
# main thread spent ~4% more CPU per 100k transactions, measured 2026-12-03).
GC_OBJECTS_PER_BATCH_MESSAGE = 25
# httpx logs every request at INFO: thousands a minute here.
logging.getLogger("httpx").setLevel(logging.WARNING)


def v2_client(config: BridgeSettings, url: str, *, max_attempts: int | None = None) -> V2Client:
    """The client of the predictor at `url`, over the configured transport."""
    options: dict[str, Any] = {
        "timeout_s": config.request_timeout_s,
        "max_attempts": max_attempts or config.max_attempts,
        "backoff": Backoff(
            config.backoff_initial_s, max(config.backoff_max_s, config.backoff_initial_s)
        ),
        "breaker": CircuitBreaker(config.breaker_failure_threshold, config.breaker_reset_s),
    }
    if config.transport == "grpc":
        return GrpcV2Client(url, grpc_address(url, config.predictor_grpc_port), **options)
    return V2Client(url, **options)


def build_scorer(config: BridgeSettings) -> V2Scorer:
    detector = v2_client(config, config.predictor_url)
    risk = None
    if config.risk_model:
        same = config.risk_predictor_url in (None, config.predictor_url)
        risk = detector if same else v2_client(config, str(config.risk_predictor_url))
    shadow = None
    if config.challenger_url:
        # One try per batch: a shadow never holds the stream back for retries.
        challenger = v2_client(config, config.challenger_url, max_attempts=1)
        shadow = Shadow(challenger, config.detector_model)
    return V2Scorer(
        detector,
        risk,
        config.detector_model,
        config.risk_model,
        reasons=config.reasons,
        reasons_per_row=config.reasons_per_row,
        recommendations=config.recommendations,
        shadow=shadow,
    )


def build_bridge(settings: Settings, *, serve_http: bool = True) -> Bridge:
    return Bridge(
        settings, build_scorer(settings.bridge), open_sink(settings), serve_http=serve_http
    )


def run_bridge(settings: Settings, *, idle_exit_s: float | None = None) -> RunStats:
    """Run a bridge in this (main) thread; SIGTERM and SIGINT make it finish and commit.

    A champion promoted meanwhile that reads features the bridge computes only from its start
    (merchant risk) ends the run without committing what it had not sent (RestartToBind); a
    new bridge then starts in this process, binds with them and replays from the last commit:
    no operator needed (docs/bridge.md, "When the champion changes")."""
    total = RunStats()
    current: list[Bridge] = []
    stopping = threading.Event()

    def graceful(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the batch, committing, closing", signal.Signals(signum).name)
        stopping.set()
        for bridge in current:
            bridge.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, graceful)
        signal.signal(signal.SIGINT, graceful)
    while not stopping.is_set():
        bridge = build_bridge(settings)
        current[:] = [bridge]
        if stopping.is_set():  # a signal while it was built
            bridge.stop()
        try:
            bridge.start()
            tune_collector(settings.bridge.batch_max_messages)
            return total.add(bridge.run(idle_exit_s=idle_exit_s))
        except RestartToBind as exc:
            total.add(bridge.stats)
            log.warning("%s: starting the bridge again in this process", exc)
    return total


def tune_collector(batch_max_messages: int) -> None:
    """Size the cycle collector to the bridge's batches (see GC_OBJECTS_PER_BATCH_MESSAGE).

    Everything loaded so far (modules, clients) lives as long as the process: frozen, out of
    the collector's sight, a full collection under load takes a few ms instead of 50-90 ms.
    """
    gc.collect()
    gc.freeze()
    first, *older = gc.get_threshold()
    gc.set_threshold(max(first, GC_OBJECTS_PER_BATCH_MESSAGE * batch_max_messages), *older)
