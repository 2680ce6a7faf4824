"""The batch's state machine: the steps in order, none skipped or repeated."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from finrisk.serving.bridge import batch as batch_module
from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.delivery import Tracker
from finrisk.serving.bridge.stages import PATHS, IllegalTransition, Stage


def _batch(checkpoint: bool = True, transacted: bool = False) -> Batch:
    empty = np.zeros((0, 1))
    return Batch(
        rows=[],
        positions=[],
        stamps_ms=np.zeros(0, dtype=np.int64),
        tx_matrix=empty,
        user_matrix=empty,
        dead=[],
        next_offsets={0: 5},
        changelog=[],
        checkpoint=checkpoint,
        transacted=transacted,
    )


def test_a_checkpoint_batch_goes_through_every_step_at_least_once() -> None:
    batch = _batch()
    assert batch.stage is Stage.PREPARED
    outputs, changelog = Tracker(), Tracker()
    batch.sent(outputs)
    batch.flushed()
    batch.changelog_out(changelog)
    batch.done()
    assert (batch.stage, batch.outputs_sent, batch.changelog_sent) == (
        Stage.DONE,
        outputs,
        changelog,
    )


def test_other_batches_are_done_once_sent_and_exactly_once_at_once() -> None:
    plain = _batch(checkpoint=False)
    plain.sent(Tracker())
    plain.done()
    transacted = _batch(transacted=True)
    transacted.done()
    assert plain.stage is transacted.stage is Stage.DONE


@pytest.mark.parametrize(
    ("kind", "steps"),
    [
        ({}, ["flushed"]),
        ({}, ["sent", "changelog_out"]),
        ({}, ["sent", "sent"]),
        ({}, ["sent", "done"]),  # a checkpoint's changelog and sink flush skipped
        ({}, ["done"]),  # only a transaction takes a batch straight to done
        ({"checkpoint": False}, ["sent", "flushed"]),
        ({"transacted": True}, ["sent"]),
        ({"transacted": True}, ["done", "done"]),
    ],
    ids=[
        "flush-unsent",
        "changelog-unflushed",
        "sent-twice",
        "checkpoint-done-when-sent",
        "done-unsent",
        "flush-between-checkpoints",
        "transaction-sent",
        "done-twice",
    ],
)
def test_a_step_out_of_order_is_refused(kind: dict[str, bool], steps: list[str]) -> None:
    batch = _batch(**kind)
    *before, last = steps
    for step in before:
        getattr(batch, step)(*([Tracker()] if step in ("sent", "changelog_out") else []))
    with pytest.raises(IllegalTransition, match="cannot go from"):
        getattr(batch, last)(*([Tracker()] if last in ("sent", "changelog_out") else []))


def test_every_path_ends_done_and_only_batch_py_moves_a_batch() -> None:
    assert all(path[0] is Stage.PREPARED and path[-1] is Stage.DONE for path in PATHS.values())
    package = Path(batch_module.__file__).parent
    movers = [
        path.name
        for path in package.glob("*.py")
        if re.search(r"\.stage\s*=[^=]", path.read_text(encoding="utf-8"))
    ]
    assert movers == ["batch.py"]
