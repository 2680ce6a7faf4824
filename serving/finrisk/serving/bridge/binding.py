"""How to call one served model: its name, the version bound, and the columns of the bridge's
feature matrix in the order that version's V2 metadata lists its inputs.

A champion promoted while the bridge runs may list other inputs than the version bound before
it: the same features in another order, fewer, or more (docs/bridge.md, "When the champion
changes"). The scorer binds again by name whenever the served version changes; a version it
cannot bind to is one of the two failures below, never a batch scored in the wrong order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from finrisk.features import TRANSACTION_FEATURES
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.serving.bridge.v2_client import BadAnswer, ModelMetadata

# The transaction matrix of a bridge serving merchant risk (docs/bridge.md, "Merchant risk").
MERCHANT_COLUMNS = (*TRANSACTION_FEATURES, *SERVED_MERCHANT_FEATURES)


class FeaturesNotComputed(BadAnswer):
    """The served version reads features this bridge release does not compute at all. A stall,
    as a predictor outage is (nothing dead-lettered, nothing lost): it ends by itself once the
    champion moves back, or when a bridge that computes them takes over."""


class RestartToBind(Exception):
    """The served detector reads features this bridge computes only when it starts with them
    (merchant risk, which needs its topics read before the first batch): the bridge ends its
    run without committing the batches not sent, and starts again in process
    (finrisk.serving.bridge.app.run_bridge), binding with them."""


@dataclass(frozen=True)
class Binding:
    """How to call one served model version: its name and the column order it takes."""

    model: str
    version: str | None  # as the metadata lists it; None when it lists no single version
    wanted: tuple[str, ...]
    columns: npt.NDArray[np.intp]  # indices into the bridge's feature order
    identity: bool

    @classmethod
    def of(
        cls,
        model: str,
        wanted: Sequence[str],
        have: Sequence[str],
        *,
        version: str | None = None,
        at_start: Sequence[str] = (),
    ) -> Binding:
        """Bind `wanted` to the matrix of columns `have`. A feature missing from `have` that
        the bridge computes when started with it (`at_start`): RestartToBind; any other:
        FeaturesNotComputed, naming them."""
        missing = [name for name in wanted if name not in have]
        served = f"model {model} version {version or '(unlisted)'}"
        absent = [name for name in missing if name not in at_start]
        if absent:
            raise FeaturesNotComputed(
                f"{served} reads features this bridge does not compute: {absent}; paused until "
                "the champion moves back or a bridge that computes them takes over"
            )
        if missing:
            raise RestartToBind(
                f"{served} reads {missing}, which this bridge computes only when it starts "
                "with them (merchant risk)"
            )
        columns = np.array([list(have).index(name) for name in wanted], dtype=np.intp)
        return cls(model, version, tuple(wanted), columns, tuple(wanted) == tuple(have))

    def select(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # Identity only on a matrix of exactly its columns: with merchant risk the bridge's
        # matrix has more columns than a model bound to TRANSACTION_FEATURES reads.
        if self.identity and rows.shape[1] == len(self.columns):
            return rows
        return rows[:, self.columns]

    def answered_by_another(self, version: str | None) -> bool:
        """Whether an answer came from a version other than the one bound (the alias moved
        between reading the metadata and scoring): its scores may be of misplaced columns."""
        return version is not None and self.version is not None and version != self.version

    def stale(self, metadata: ModelMetadata) -> bool:
        """Whether the model now served differs from the version bound (or lists other inputs)."""
        return served_version(metadata) != self.version or (
            feature_order(metadata.inputs, ()) != self.wanted
        )


def matrix_columns(width: int) -> tuple[str, ...]:
    """The columns of a transaction matrix `width` wide, as the bridge computes it: whether it
    serves merchant risk was decided at its start."""
    for columns in (TRANSACTION_FEATURES, MERCHANT_COLUMNS):
        if len(columns) == width:
            return tuple(columns)
    raise ValueError(f"a transaction matrix of {width} columns is none the bridge computes")


def served_version(metadata: ModelMetadata) -> str | None:
    """The version a model's metadata says is served: its only listed version, else None."""
    return metadata.versions[0] if len(metadata.versions) == 1 else None


def feature_order(inputs: Sequence[dict[str, Any]], default: Sequence[str]) -> tuple[str, ...]:
    """The model's feature order from its V2 metadata (one named input per feature)."""
    names = tuple(str(item["name"]) for item in inputs if "name" in item)
    return names or tuple(default)
