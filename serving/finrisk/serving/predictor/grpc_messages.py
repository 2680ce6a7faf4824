"""The Open Inference Protocol's gRPC messages (kserve's generated `inference` protobufs) to and
from what the REST routes handle, so both protocols share one validation and one scoring.

A ModelInferRequest becomes the V2 document a REST body carries: raw_input_contents become
binary tensor data (each input declaring its `binary_data_size`), typed contents become the
input's `data` (bytes_contents as UTF-8 text, as JSON carries a categorical input's category
text); inputs.v2_request then checks it exactly as it checks a REST request. Only what
JSON cannot say wrongly is checked here (how raw contents line up with inputs, which contents
field a datatype fills). Outputs go back as raw_output_contents, as Triton's server sends them.
"""

from __future__ import annotations

from typing import Any

from finrisk.serving.predictor.inputs import InputError
from finrisk.serving.predictor.kserve_import import kserve
from finrisk.serving.predictor.model import V2Document
from finrisk.serving.predictor.responses import response_id, v2_outputs
from finrisk.serving.predictor.scoring import Scored, Scorer
from finrisk.serving.protocol import (
    BINARY_DATA_SIZE,
    BOOL,
    BYTES,
    FP64,
    FP64_BYTES,
    parameter_value,
    raw_contents,
)

pb = kserve.protocol.grpc.grpc_predict_v2_pb2

# Where each datatype's values travel in InferTensorContents.
CONTENTS_FIELD = {
    BOOL: "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    FP64: "fp64_contents",
    BYTES: "bytes_contents",
}
BYTES_CONTENTS = CONTENTS_FIELD[BYTES]


def _texts(name: str, values: list[bytes]) -> list[str]:
    """bytes_contents as the text a JSON body carries (a categorical input's category texts)."""
    texts = []
    for i, value in enumerate(values):
        try:
            texts.append(value.decode())
        except UnicodeDecodeError:
            raise InputError(f"input {name!r}, row {i}: bytes_contents is not UTF-8 text") from None
    return texts


def _parameters(entries: Any) -> dict[str, Any]:
    return {key: parameter_value(value) for key, value in entries.items()}


def infer_document(request: Any) -> V2Document:
    """A ModelInferRequest as the V2 document and binary data a REST request would carry."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InputError(
            f"raw_input_contents holds {len(raw)} tensors for {len(request.inputs)} inputs: "
            "give one per input, in order, or none"
        )
    inputs = []
    for k, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
        }
        parameters = _parameters(tensor.parameters)
        filled = [field.name for field, _ in tensor.contents.ListFields()]
        if raw:
            if filled:
                raise InputError(
                    f"input {tensor.name!r}: contents and raw_input_contents are both given; "
                    "send one"
                )
            if tensor.datatype == FP64 and len(raw[k]) % FP64_BYTES:
                raise InputError(
                    f"raw_input_contents[{k}] (input {tensor.name!r}): {len(raw[k])} bytes is "
                    f"not a whole number of FP64 values ({FP64_BYTES} bytes each)"
                )
            parameters[BINARY_DATA_SIZE] = len(raw[k])
        else:
            expected = CONTENTS_FIELD.get(tensor.datatype)
            stray = [name for name in filled if name != expected]
            if stray:
                raise InputError(
                    f"input {tensor.name!r}: datatype {tensor.datatype!r} carries its values in "
                    f"{expected or 'no contents field'}, not {stray[0]}"
                )
            values = list(getattr(tensor.contents, expected)) if expected else []
            item["data"] = _texts(tensor.name, values) if expected == BYTES_CONTENTS else values
        if parameters:
            item["parameters"] = parameters
        inputs.append(item)
    document: dict[str, Any] = {"inputs": inputs}
    if request.id:
        document["id"] = request.id
    if request.parameters:
        document["parameters"] = _parameters(request.parameters)
    if request.outputs:
        document["outputs"] = [{"name": output.name} for output in request.outputs]
    return V2Document(document, b"".join(raw))


def _parameter(value: Any) -> Any:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    # kserve's InferParameter has no double_param (Triton's has): a float (the threshold, the
    # band edges) travels as the shortest text that reads back to the same float64.
    return pb.InferParameter(string_param=repr(value) if isinstance(value, float) else str(value))


def infer_response(
    scorer: Scorer, scored: Scored, request_id: str | None, outputs: list[str] | None
) -> Any:
    """The ModelInferResponse of a scored batch: the tensors v2_body writes, as raw contents."""
    tensors, contents = [], []
    for tensor in v2_outputs(scorer, scored, outputs):
        tensors.append(
            pb.ModelInferResponse.InferOutputTensor(
                name=tensor.name, datatype=tensor.datatype, shape=list(tensor.values.shape)
            )
        )
        contents.append(raw_contents(tensor.values, tensor.datatype))
    return pb.ModelInferResponse(
        model_name=scorer.name,
        model_version=scorer.version,
        id=response_id(request_id),
        parameters={k: _parameter(v) for k, v in scorer.decision_parameters().items()},
        outputs=tensors,
        raw_output_contents=contents,
    )


def tensor_metadata(specs: list[dict[str, Any]]) -> list[Any]:
    """Input or output specs (TensorSpec.to_dict) as TensorMetadata. The message has no
    parameters: which inputs are optional or categorical is in the REST metadata only."""
    return [
        pb.ModelMetadataResponse.TensorMetadata(
            name=spec["name"], datatype=spec["datatype"], shape=spec["shape"]
        )
        for spec in specs
    ]
