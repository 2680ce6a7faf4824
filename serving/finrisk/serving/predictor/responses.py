"""V1 and V2 (Open Inference Protocol) response bodies, encoded once with orjson."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
import orjson

from finrisk.compiled import DETECTOR
from finrisk.serving.predictor.scoring import Scored, Scorer
from finrisk.serving.protocol import (
    BAND_OUTPUT,
    FLAG_OUTPUT,
    PROBABILITY_OUTPUT,
    REASONS_OUTPUT,
    RECOMMENDATIONS_OUTPUT,
    SCORE_OUTPUT,
)

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=_OPTIONS)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def v1_body(scorer: Scorer, scored: Scored) -> dict[str, Any]:
    """{"predictions": [{output: value, ...} per row], "model_name", "model_version", ...}."""
    out = scored.outputs
    if scorer.kind == DETECTOR:
        predictions = [
            {SCORE_OUTPUT: s, FLAG_OUTPUT: a}
            for s, a in zip(out[SCORE_OUTPUT].tolist(), out[FLAG_OUTPUT].tolist(), strict=True)
        ]
    else:
        explained = scored.explained
        reasons = explained.reasons() if explained else [[] for _ in range(scored.rows)]
        predictions = [
            {PROBABILITY_OUTPUT: p, BAND_OUTPUT: b, REASONS_OUTPUT: [r.to_dict() for r in row]}
            for p, b, row in zip(
                out[PROBABILITY_OUTPUT].tolist(), out[BAND_OUTPUT].tolist(), reasons, strict=True
            )
        ]
        if scored.recommended is not None:
            for prediction, recommended in zip(predictions, scored.recommended, strict=True):
                prediction[RECOMMENDATIONS_OUTPUT] = recommended
    return {
        "predictions": predictions,
        "model_name": scorer.name,
        "model_version": scorer.version,
        **scorer.decision(),
    }


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    values: npt.NDArray[Any]  # rows first, as shaped on the wire


def v2_outputs(scorer: Scorer, scored: Scored, outputs: list[str] | None) -> list[OutputTensor]:
    """The V2 output tensors of a scored batch: the ones asked for, else all, in order (REST
    and gRPC alike)."""
    names = outputs if outputs is not None else list(scored.outputs)
    datatypes = scorer.datatypes()
    return [OutputTensor(name, datatypes[name], scored.outputs[name]) for name in names]


def response_id(request_id: str | None) -> str:
    # The protocol wants a string id; invent one when the client sent none.
    return request_id if request_id is not None else uuid.uuid4().hex


def v2_body(
    scorer: Scorer, scored: Scored, request_id: str | None, outputs: list[str] | None
) -> dict[str, Any]:
    tensors = []
    for tensor in v2_outputs(scorer, scored, outputs):
        data = tensor.values
        flat: Any = data.ravel() if data.ndim > 1 else data
        if data.dtype.kind == "U":  # orjson writes numeric arrays itself, not string ones
            flat = flat.tolist()
        tensors.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(data.shape),
                "data": flat,
            }
        )
    return {
        "model_name": scorer.name,
        "model_version": scorer.version,
        "id": response_id(request_id),
        "parameters": scorer.decision_parameters(),
        "outputs": tensors,
    }
