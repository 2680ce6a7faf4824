"""The stages of a micro-batch and the transitions between them: the bridge's state machine.

A batch goes through these steps in order, and a step that completed is not redone when a later
one fails (the batch keeps its stage, and the step is retried from there):

    PREPARED        parsed and checked (bad messages become dead letters), messages the
                    restored state already includes skipped, online features updated; a
                    checkpoint batch (one per checkpoint_interval_ms) also saved the state of every
                    user changed since the last checkpoint. Scored in a worker thread while
                    the loop prepares the next batch.
      -> SENT       at least once: scored records and dead letters produced, anomalies handed
                    to the sink's thread.
      -> FLUSHED    a checkpoint batch, once its outputs are acknowledged: the sink flushed (and
                    dead letters of the rows it refused sent).
      -> CHANGELOG_SENT  once those are durable: the users' state sent to the changelog.
      -> DONE       once the changelog is durable: the offsets of every batch up to the
                    checkpoint committed. A batch that is not a checkpoint is DONE from SENT as
                    soon as its outputs are acknowledged (its offsets wait for the next one).
    PREPARED -> DONE  exactly once: every batch is a checkpoint, and outputs, changelog and
                    offsets are one Kafka transaction, after the sink's flush.

The order is what at least once needs: a durable changelog record means durable outputs for
everything in its state (the replay skip relies on it), and a commit means a durable changelog.
"""

from __future__ import annotations

from enum import Enum


class Stage(Enum):
    PREPARED = "prepared"
    SENT = "sent"
    FLUSHED = "flushed"
    CHANGELOG_SENT = "changelog_sent"
    DONE = "done"


# The path of each kind of batch, step by step; a batch moves only to the next stage of its own.
PATHS: dict[str, tuple[Stage, ...]] = {
    "checkpoint": (Stage.PREPARED, Stage.SENT, Stage.FLUSHED, Stage.CHANGELOG_SENT, Stage.DONE),
    "between checkpoints": (Stage.PREPARED, Stage.SENT, Stage.DONE),
    "exactly once": (Stage.PREPARED, Stage.DONE),
}


def path_of(*, checkpoint: bool, transacted: bool) -> str:
    if transacted:
        return "exactly once"
    return "checkpoint" if checkpoint else "between checkpoints"


class IllegalTransition(AssertionError):
    """A batch asked to skip or repeat a step: a bug, never a condition to handle (an
    AssertionError, so that no handler of runtime errors takes it for one)."""


def check_transition(current: Stage, to: Stage, path: str) -> None:
    stages = PATHS[path]
    at = stages.index(current)
    if at + 1 >= len(stages) or stages[at + 1] is not to:
        raise IllegalTransition(f"a {path} batch cannot go from {current.value} to {to.value}")
