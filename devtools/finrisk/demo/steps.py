"""What both demos do between their steps: say each step and its time, keep a task's output in
a log file, show progress, and read a scored topic until every transaction has come."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import orjson
from tqdm import tqdm

from finrisk.errors import FinriskError


@contextmanager
def step(title: str, out: TextIO) -> Iterator[None]:
    print(f"==> {title}", file=out, flush=True)
    started = time.perf_counter()
    yield
    print(f"    done in {time.perf_counter() - started:.1f} s", file=out, flush=True)


@contextmanager
def output_to(log: Path, out: TextIO) -> Iterator[None]:
    """Send this process's (and its children's) stdout and stderr to `log` for a while.

    The pipeline's tasks print their full logs; the demo keeps them in a file and names it.
    """
    print(f"    task logs: {log}", file=out, flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with log.open("ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


@contextmanager
def naming_log(log: Path) -> Iterator[None]:
    try:
        yield
    except FinriskError as exc:
        raise FinriskError(f"{exc}\nthe pipeline's task logs: {log}") from None


@contextmanager
def progress_bar(total: int, unit: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    with tqdm(total=total, unit=f" {unit}", disable=not enabled, leave=False) as bar:

        def advance(done: int) -> None:
            bar.update(max(0, done - bar.n))

        yield advance
        bar.update(total - bar.n)


def read_scored(
    bootstrap: str,
    topic: str,
    expected: set[str],
    timeout_s: float,
    progress: bool,
    bridge_alive: Callable[[], bool],
) -> list[dict[str, Any]]:
    """Every record of the scored topic until each expected transaction id has come."""
    missing = set(expected)
    seen = 0
    with progress_bar(len(expected), "scored", progress) as advance:

        def done(records: list[dict[str, Any]]) -> bool:
            nonlocal seen
            for record in records[seen:]:
                missing.discard(record["transaction_id"])
            seen = len(records)
            advance(len(expected) - len(missing))
            if missing and not bridge_alive():
                raise FinriskError("the bridge stopped before scoring every transaction")
            return not missing

        return read_json_until(
            bootstrap,
            topic,
            done,
            timeout_s,
            awaited=lambda: f"the scores of {len(missing)} of {len(expected)} transactions",
        )


def read_json_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float,
    *,
    awaited: Callable[[], str] = lambda: "what was awaited",
) -> list[dict[str, Any]]:
    """The topic's JSON records from the beginning, read until `done(records)` holds;
    `awaited()` says what had not come when `timeout_s` runs out."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.demo-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        consumer.subscribe([topic])
        while not done(records):
            if time.monotonic() > deadline:
                raise FinriskError(f"{topic}: {awaited()} did not come within {timeout_s:.0f} s")
            for message in consumer.consume(5000, 0.5):
                value = message.value()
                if message.error() is None and value is not None:
                    records.append(orjson.loads(value))
    finally:
        consumer.close()
    return records
