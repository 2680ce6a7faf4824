"""Category text at the predictor's validator: a categorical input takes its category's text
wherever it takes the code (V1 values, a V2 BYTES input as JSON, binary data or gRPC contents),
read by the training encoder's rule; text anywhere else is a 400 naming the input and row.
Scoring parity of text and codes: tests/unit/test_risk_gaps.py and, live,
tests/integration/test_predictor_grpc.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from finrisk.models.encoding import encode
from finrisk.serving.predictor.grpc_messages import infer_document, pb
from finrisk.serving.predictor.inputs import InputError, v1_matrix, v2_request
from finrisk.serving.protocol import BINARY_DATA_SIZE, BYTES, raw_contents

NAMES = ("income", "grade", "region")
CATEGORIES = {"grade": ["A", "B", "C"], "region": ["north", "south"]}
OPTIONAL = frozenset(NAMES)
NAN = np.nan


def _v1(instances: list[dict[str, Any]], optional: frozenset[str] = OPTIONAL) -> np.ndarray:
    return v1_matrix({"instances": instances}, NAMES, 10, optional, CATEGORIES)


def _tensor(name: str, data: Any, datatype: str = "FP64", shape: list[int] | None = None) -> Any:
    return {"name": name, "shape": shape or [len(data)], "datatype": datatype, "data": data}


def _binary_bytes(name: str, size: int, rows: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "shape": [rows],
        "datatype": BYTES,
        "parameters": {BINARY_DATA_SIZE: size},
    }


def _v2(inputs: list[Any], binary: bytes = b"") -> np.ndarray:
    return v2_request({"inputs": inputs}, NAMES, 10, binary, OPTIONAL, CATEGORIES).matrix


def test_v1_text_becomes_the_code_codes_and_gaps_stay() -> None:
    matrix = _v1(
        [
            {"income": 1.0, "grade": "C", "region": "north"},
            {"income": 2.0, "grade": 1, "region": None},
            {"income": None, "grade": " A ", "region": 1.0},
        ]
    )
    np.testing.assert_array_equal(matrix, [[1, 2, 0], [2, 1, NAN], [NAN, 0, 1]])


def test_text_is_read_as_the_training_encoder_reads_it() -> None:
    """Unseen, empty, other case or padded: the code (or gap) training gives the same text."""
    texts = ["B", " B", "b", "", "Z", "A"]
    matrix = _v1([{"income": 0.0, "grade": t, "region": "south"} for t in texts])
    frame = pd.DataFrame(
        {"income": 0.0, "grade": pd.Series(texts, dtype=object), "region": "south"}
    )
    trained = encode(frame, NAMES, CATEGORIES)
    np.testing.assert_array_equal(matrix, trained)
    np.testing.assert_array_equal(matrix[:, 1], [1, 1, NAN, NAN, NAN, 0])


def test_v1_text_for_a_numeric_input_is_named() -> None:
    rows = [{"income": v, "grade": "A", "region": "north"} for v in (1.0, "3000")]
    with pytest.raises(InputError, match="row 1, feature 'income': expected a number, got str"):
        _v1(rows)


def test_unseen_text_where_a_gap_is_not_allowed_is_named() -> None:
    message = r"row 0, feature 'grade': 'Z' is not a category of 'grade' \(A, B, C\)"
    with pytest.raises(InputError, match=message):
        _v1([{"income": 1.0, "grade": "Z", "region": "north"}], optional=frozenset())


def test_v2_bytes_inputs_carry_the_text() -> None:
    matrix = _v2(
        [
            _tensor("income", [1.0, 2.0, None]),
            _tensor("grade", ["C", None, "unseen"], BYTES),
            _tensor("region", [["south"], ["north"], ["north"]], BYTES, [3, 1]),
        ]
    )
    np.testing.assert_array_equal(matrix, [[1, 2, 1], [2, NAN, 0], [NAN, NAN, 0]])


def test_v2_binary_bytes_are_the_text_too() -> None:
    """The binary extension's BYTES: each element's 4-byte length, then its UTF-8 bytes."""
    income = np.array([1.0, 2.0])
    grade = raw_contents(np.array(["B", "A"], dtype=object), BYTES)
    body = [
        {**_binary_bytes("income", income.nbytes, 2), "datatype": "FP64"},
        _binary_bytes("grade", len(grade), 2),
        _tensor("region", ["north", "south"], BYTES),
    ]
    matrix = _v2(body, income.astype("<f8").tobytes() + grade)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [2, 0, 1]])


@pytest.mark.parametrize(
    ("inputs", "binary", "message"),
    [
        (
            [_tensor("income", ["3000"], BYTES), _tensor("grade", [0]), _tensor("region", [0])],
            b"",
            "input 'income': datatype 'BYTES' (text) is not accepted for 'income', which is not "
            "categorical; this model takes FP64 (codes), and BYTES (category text) for its "
            "categorical input(s) 'grade', 'region'",
        ),
        (
            [_tensor("features", ["1", "A", "north"], BYTES, [1, 3])],
            b"",
            "input 'features': the feature matrix is FP64 (categories as codes), not BYTES",
        ),
        (
            [_tensor("features", [1.0, "A", 0.0], "FP64", [1, 3])],
            b"",
            "input 'features', row 0, feature 'grade': expected a number, got str",
        ),
        (
            [_tensor("income", [1.0]), _tensor("grade", ["A"]), _tensor("region", [0])],
            b"",
            "input 'grade', row 0: expected a number, got str",  # text only as BYTES
        ),
        (
            [
                _tensor("income", [1.0] * 2),
                _tensor("grade", ["A", 1], BYTES),
                _tensor("region", [0] * 2),
            ],
            b"",
            "input 'grade', row 1: a BYTES input holds category text, got int 1",
        ),
        (
            [_tensor("income", [1.0]), _tensor("grade", ["A"], "INT64"), _tensor("region", [0])],
            b"",
            "datatype 'INT64' is not accepted; this model takes FP64 (codes), and BYTES",
        ),
        (
            [_tensor("income", [1.0]), _tensor("region", [0]), _binary_bytes("grade", 6)],
            b"\x05\0\0\0AB",
            "inputs[2]: a BYTES element of 5 bytes runs past the contents",
        ),
        (
            [_tensor("income", [1.0]), _tensor("region", [0]), _binary_bytes("grade", 5)],
            b"\x01\0\0\0\xff",
            "inputs[2]: BYTES element 0 (at byte 4) is not UTF-8 text",
        ),
    ],
)
def test_text_where_it_is_not_taken_is_named(
    inputs: list[Any], binary: bytes, message: str
) -> None:
    with pytest.raises(InputError) as info:
        _v2(inputs, binary)
    assert message in str(info.value)


def _grpc_tensor(name: str, datatype: str, **contents: Any) -> Any:
    return pb.ModelInferRequest.InferInputTensor(
        name=name,
        datatype=datatype,
        shape=[2],
        contents=pb.InferTensorContents(**contents) if contents else None,
    )


def test_grpc_bytes_contents_and_raw_bytes_carry_the_text() -> None:
    typed = pb.ModelInferRequest(
        inputs=[
            _grpc_tensor("income", "FP64", fp64_contents=[1.0, 2.0]),
            _grpc_tensor("grade", BYTES, bytes_contents=[b"C", b" A"]),
            _grpc_tensor("region", BYTES, bytes_contents=[b"south", b"nowhere"]),
        ]
    )
    raw = pb.ModelInferRequest(
        inputs=[
            _grpc_tensor("income", "FP64"),
            _grpc_tensor("grade", BYTES),
            _grpc_tensor("region", BYTES),
        ],
        raw_input_contents=[
            np.array([1.0, 2.0]).astype("<f8").tobytes(),
            raw_contents(np.array(["C", " A"], dtype=object), BYTES),
            raw_contents(np.array(["south", "nowhere"], dtype=object), BYTES),
        ],
    )
    for request in (typed, raw):
        found = infer_document(request)
        matrix = _v2(found.document["inputs"], found.binary)
        np.testing.assert_array_equal(matrix, [[1, 2, 1], [2, 0, NAN]])


def test_grpc_bytes_contents_that_are_not_text_are_named() -> None:
    request = pb.ModelInferRequest(
        inputs=[_grpc_tensor("grade", BYTES, bytes_contents=[b"A", b"\xff\xfe"])]
    )
    with pytest.raises(InputError, match="input 'grade', row 1: bytes_contents is not UTF-8"):
        infer_document(request)


def test_a_model_without_categories_takes_no_text() -> None:
    inputs = [_tensor("a", ["x"], BYTES), _tensor("b", [1.0])]
    with pytest.raises(InputError) as info:
        v2_request({"inputs": inputs}, ("a", "b"), 10)
    assert str(info.value) == "input 'a': datatype 'BYTES' is not accepted; this model takes FP64"
    with pytest.raises(InputError, match="row 0, feature 'a': expected a number, got str"):
        v1_matrix({"instances": [{"a": "x", "b": 1.0}]}, ("a", "b"), 10)
