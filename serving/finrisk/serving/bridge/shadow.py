"""The shadow challenger: the detector's challenger, scored beside the champion on live traffic.

One extra call per batch, to the predictor that serves the challenger alias (`challenger_url`;
`finrisk serve --alias challenger`), made at the same time as the champion's. Its scores go to
the scored records (`challenger_*`) and to monitoring (role `challenger`), never to alerts or
the anomaly sink. Nothing it does may hold the stream back or change the champion's answer: a
challenger that is down, slow past its timeout, or refuses a batch leaves that batch without
challenger scores (counted, logged), and its client tries once per batch behind a circuit
breaker, so a challenger that stays down costs the stream next to nothing.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from finrisk.serving.bridge.binding import (
    Binding,
    RestartToBind,
    feature_order,
    matrix_columns,
    served_version,
)
from finrisk.serving.bridge.v2_client import (
    EndpointUnavailable,
    InferResult,
    RequestRejected,
    V2Client,
)
from finrisk.serving.protocol import MATRIX_INPUT

log = logging.getLogger("finrisk.bridge")


class Shadow:
    def __init__(self, client: V2Client, model: str) -> None:
        self.client = client
        self.model = model
        self.failures = 0
        self._binding: Binding | None = None

    def score(self, tx_rows: npt.NDArray[np.float64]) -> InferResult | None:
        """The challenger's answer on a batch's transaction rows; None when it has none.

        Bound by the order of the version it serves: an answer from another version (its alias
        moved) is thrown away and the batch tried once more, bound again; a version reading
        features the bridge's matrix lacks gets no batch (logged, naming them)."""
        try:
            for _ in range(2):
                binding = self._binding
                if binding is None:
                    binding = self._binding = self._bind(matrix_columns(tx_rows.shape[1]))
                result = self.client.infer(
                    self.model, binding.select(tx_rows), input_name=MATRIX_INPUT
                )
                if not binding.answered_by_another(result.model_version):
                    return result
                self._binding = None
            raise EndpointUnavailable(f"the challenger {self.model} changed version twice")
        except (EndpointUnavailable, RequestRejected, RestartToBind) as exc:
            # Its feature order is read again next time: the alias may have moved meanwhile.
            self._binding = None
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("the challenger scored no batch (%d so far): %s", self.failures, exc)
            return None

    def _bind(self, have: tuple[str, ...]) -> Binding:
        self.client.negotiate()
        metadata = self.client.metadata(self.model)
        order = feature_order(metadata.inputs, ())
        return Binding.of(self.model, order, have, version=served_version(metadata))

    def profile(self, version: str) -> dict[str, object] | None:
        return self.client.profile(self.model, version)

    def close(self) -> None:
        self.client.close()
