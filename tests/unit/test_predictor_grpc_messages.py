"""gRPC's ModelInferRequest as the V2 document REST carries: raw contents become binary tensor
data, typed contents the input's data, parameters their JSON values; the validator then reads
them as it reads REST (the live contract: tests/integration/test_predictor_grpc.py)."""

from __future__ import annotations

import numpy as np
import pytest

from finrisk.serving.predictor.grpc_messages import infer_document, pb
from finrisk.serving.predictor.inputs import InputError, v2_request

NAMES = ["a", "b", "c"]
ROWS = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0]])


def _tensor(
    name: str, shape: list[int], **contents: list[float]
) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(
        name=name,
        datatype="FP64",
        shape=shape,
        contents=pb.InferTensorContents(**contents) if contents else None,
    )


def test_raw_contents_become_binary_tensor_data() -> None:
    request = pb.ModelInferRequest(
        id="r-1",
        inputs=[_tensor("features", [2, 3])],
        raw_input_contents=[ROWS.astype("<f8").tobytes()],
        parameters={
            "reasons": pb.InferParameter(int64_param=2),
            "reasons_from": pb.InferParameter(string_param="HIGH"),
            "flag": pb.InferParameter(bool_param=True),
        },
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="probability")],
    )
    found = infer_document(request)
    assert found.binary == ROWS.astype("<f8").tobytes()
    assert found.document["inputs"][0]["parameters"] == {"binary_data_size": 48}
    assert found.document["parameters"] == {"reasons": 2, "reasons_from": "HIGH", "flag": True}
    parsed = v2_request(found.document, NAMES, 10, found.binary, optional=frozenset({"b"}))
    np.testing.assert_array_equal(parsed.matrix, ROWS)
    assert (parsed.id, parsed.outputs) == ("r-1", ["probability"])


def test_typed_contents_become_data_per_named_input() -> None:
    request = pb.ModelInferRequest(
        inputs=[
            _tensor(name, [2], fp64_contents=ROWS[:, j].tolist()) for j, name in enumerate(NAMES)
        ]
    )
    found = infer_document(request)
    assert "id" not in found.document and found.binary == b""  # proto3's "" is no id
    parsed = v2_request(found.document, NAMES, 10, optional=frozenset({"b"}))
    np.testing.assert_array_equal(parsed.matrix, ROWS)


def test_a_gap_where_none_is_allowed_is_named_as_on_rest() -> None:
    found = infer_document(
        pb.ModelInferRequest(
            inputs=[_tensor("features", [2, 3], fp64_contents=ROWS.ravel().tolist())]
        )
    )
    with pytest.raises(InputError, match="row 1, feature 'b': NaN values are not allowed"):
        v2_request(found.document, NAMES, 10)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            pb.ModelInferRequest(
                inputs=[_tensor("features", [1, 3])], raw_input_contents=[b"\0" * 20]
            ),
            "20 bytes is not a whole number of FP64 values",
        ),
        (
            pb.ModelInferRequest(
                inputs=[_tensor("a", [1]), _tensor("b", [1])], raw_input_contents=[b"\0" * 8]
            ),
            "raw_input_contents holds 1 tensors for 2 inputs",
        ),
        (
            pb.ModelInferRequest(
                inputs=[_tensor("features", [1, 3], fp64_contents=[1.0, 2.0, 3.0])],
                raw_input_contents=[b"\0" * 24],
            ),
            "contents and raw_input_contents are both given",
        ),
        (
            pb.ModelInferRequest(
                inputs=[_tensor("features", [1, 3], fp32_contents=[1.0, 2.0, 3.0])]
            ),
            "carries its values in fp64_contents, not fp32_contents",
        ),
    ],
)
def test_what_only_grpc_can_get_wrong_is_named(
    request_: pb.ModelInferRequest, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        infer_document(request_)
