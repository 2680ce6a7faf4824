"""V1 and V2 (Open Inference Protocol) response bodies, encoded once with orjson."""

from __future__ import annotations

import uuid
from typing import Any

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


def v2_body(
    scorer: Scorer, scored: Scored, request_id: str | None, outputs: list[str] | None
) -> dict[str, Any]:
    names = outputs if outputs is not None else list(scored.outputs)
    datatypes = scorer.datatypes()
    tensors = []
    for name in names:
        data = scored.outputs[name]
        flat: Any = data.ravel() if data.ndim > 1 else data
        if data.dtype.kind == "U":  # orjson writes numeric arrays itself, not string ones
            flat = flat.tolist()
        tensors.append(
            {"name": name, "datatype": datatypes[name], "shape": list(data.shape), "data": flat}
        )
    return {
        "model_name": scorer.name,
        "model_version": scorer.version,
        # The protocol wants a string id; invent one when the client sent none.
        "id": request_id if request_id is not None else uuid.uuid4().hex,
        "parameters": scorer.decision_parameters(),
        "outputs": tensors,
    }
