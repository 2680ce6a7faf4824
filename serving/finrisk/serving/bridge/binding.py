"""How to call one served model: its name, and the columns of the bridge's feature matrix in
the order its V2 metadata lists its inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from finrisk.serving.bridge.v2_client import BadAnswer


@dataclass(frozen=True)
class Binding:
    """How to call one served model: its name and the column order it takes."""

    model: str
    columns: npt.NDArray[np.intp]  # indices into the bridge's feature order
    identity: bool

    @classmethod
    def of(cls, model: str, wanted: Sequence[str], have: Sequence[str]) -> Binding:
        missing = [name for name in wanted if name not in have]
        if missing:
            raise BadAnswer(f"model {model} wants features this bridge does not compute: {missing}")
        columns = np.array([list(have).index(name) for name in wanted], dtype=np.intp)
        return cls(model, columns, tuple(wanted) == tuple(have))

    def check_width(self, width: int) -> None:
        """Refuse a matrix without every column the model reads (a detector that reads merchant
        risk, registered after the bridge started without it), naming the cause."""
        if len(self.columns) and int(self.columns.max()) >= width:
            raise BadAnswer(
                f"model {self.model} reads features the bridge did not compute at start "
                "(merchant risk: a detector reading it was registered after the bridge "
                "started, or the predictor could not be asked then); restart the bridge"
            )

    def select(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # Identity only on a matrix of exactly its columns: with merchant risk the bridge's
        # matrix has more columns than a challenger bound to TRANSACTION_FEATURES reads.
        if self.identity and rows.shape[1] == len(self.columns):
            return rows
        return rows[:, self.columns]


def feature_order(inputs: Sequence[dict[str, Any]], default: Sequence[str]) -> tuple[str, ...]:
    """The model's feature order from its V2 metadata (one named input per feature)."""
    names = tuple(str(item["name"]) for item in inputs if "name" in item)
    return names or tuple(default)
