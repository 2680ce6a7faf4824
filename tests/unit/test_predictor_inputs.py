"""Request rules: every bad input is an InputError naming the field and the row; nothing coerced."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from finrisk.serving.predictor.inputs import (
    InputError,
    UnsupportedMediaType,
    check_content_type,
    parse_json,
    reasons_parameter,
    v1_matrix,
    v2_request,
)

NAMES = ("a", "b", "c")


def _rows(n: int = 2) -> list[dict[str, Any]]:
    return [{"a": float(i), "b": i + 0.5, "c": -1} for i in range(n)]


def test_v1_named_instances_in_model_order() -> None:
    rows = [{"c": 3, "a": 1.0, "b": 2.5}, {"b": 0.0, "c": -1.0, "a": 1e300}]
    matrix = v1_matrix({"instances": rows}, NAMES, 10)
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[1.0, 2.5, 3.0], [1e300, 0.0, -1.0]])


def test_v1_single_feature_model() -> None:
    np.testing.assert_array_equal(v1_matrix({"instances": [{"a": 2}]}, ("a",), 10), [[2.0]])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"instances": [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}]},
            "row 1: missing feature(s) 'c'",
        ),
        ({"instances": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, "row 0: unknown feature(s) 'd'"),
        (
            {"instances": [{"a": 1, "b": "2", "c": 3}]},
            "row 0, feature 'b': expected a number, got str '2'",
        ),
        (
            {"instances": [{"a": 1, "b": 2, "c": True}]},
            "row 0, feature 'c': expected a number, got bool",
        ),
        (
            {"instances": [{"a": None, "b": 2, "c": 3}]},
            "row 0, feature 'a': expected a number, got null",
        ),
        (
            {"instances": [{"a": 1, "b": 2, "c": [3]}]},
            "row 0, feature 'c': expected a number, got list",
        ),
        ({"instances": [[1, 2, 3]]}, "row 0: expected an object of named features"),
        ({"instances": []}, "empty batch"),
        ({"instances": {"a": 1}}, "'instances' must be a list"),
        ({"rows": []}, "unknown field 'rows'"),
        ([1, 2], "V1 body must be a JSON object"),
        (
            {"instances": [{"a": 1, "b": 2, "c": 3}] * 11},
            "batch of 11 rows exceeds the limit of 10",
        ),
        ({"instances": [{"a": 1, "b": 2, "c": 10**400}]}, "row 0, feature 'c': 1000"),
    ],
)
def test_v1_errors_name_the_field_and_row(body: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        v1_matrix(body, NAMES, 10)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("token", "kind"), [("NaN", "NaN"), ("Infinity", "infinite"), ("-Infinity", "infinite")]
)
def test_non_finite_values_are_named(token: str, kind: str) -> None:
    body = parse_json(
        f'{{"instances": [{{"a": 1, "b": 2, "c": 3}}, {{"a": 1, "b": {token}, "c": 3}}]}}'.encode()
    )
    with pytest.raises(InputError, match=f"row 1, feature 'b': {kind} values are not allowed"):
        v1_matrix(body, NAMES, 10)


def test_overflowing_literals_are_infinite() -> None:
    body = parse_json(b'{"instances": [{"a": 1e999, "b": 2, "c": 3}]}')
    with pytest.raises(InputError, match="row 0, feature 'a': infinite"):
        v1_matrix(body, NAMES, 10)


def test_invalid_json_and_content_types() -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        parse_json(b'{"instances": [')
    with pytest.raises(InputError, match="empty"):
        parse_json(b"")
    check_content_type("application/json")
    check_content_type("Application/JSON; charset=utf-8")
    # None: JSON, as Open Inference Protocol clients (Triton's) send it.
    check_content_type(None)
    check_content_type(None, binary=True)
    check_content_type("application/octet-stream", binary=True)
    for bad in ("text/plain", "application/octet-stream", "application/jsonp"):
        with pytest.raises(UnsupportedMediaType, match="content-type must be application/json"):
            check_content_type(bad)


def _tensor(name: str, shape: list[int], data: Any, datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def test_v2_named_inputs_flat_and_nested() -> None:
    body = {
        "id": "r1",
        "inputs": [
            _tensor("c", [2], [5, 6]),
            _tensor("a", [2, 1], [[1.0], [2.0]]),
            _tensor("b", [2], [3, 4]),
        ],
        "outputs": [{"name": "score"}],
        "parameters": {"reasons": 0},
    }
    request = v2_request(body, NAMES, 10)
    np.testing.assert_array_equal(request.matrix, [[1, 3, 5], [2, 4, 6]])
    assert (
        request.id == "r1" and request.outputs == ["score"] and request.parameters == {"reasons": 0}
    )


@pytest.mark.parametrize("data", [[1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]]])
def test_v2_one_tensor_in_feature_order(data: Any) -> None:
    request = v2_request({"inputs": [_tensor("features", [2, 3], data)]}, NAMES, 10)
    np.testing.assert_array_equal(request.matrix, [[1, 2, 3], [4, 5, 6]])
    assert request.id is None and request.outputs is None


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([_tensor("features", [1, 2], [1, 2])], "has shape [1, 2]; this model takes [rows, 3]"),
        ([_tensor("features", [2, 3], [1, 2, 3, 4, 5])], "needs 6 values, got 5"),
        (
            [_tensor("features", [1, 3], [1, "x", 3])],
            "input 'features', row 0, feature 'b': expected a number",
        ),
        (
            [_tensor("features", [2, 3], [1, 2, 3, 4, 5, True])],
            "row 1, feature 'c': expected a number, got bool",
        ),
        ([_tensor("features", [1, 3], [1.0, 2.0, 3.0], "FP32")], "datatype 'FP32' is not accepted"),
        ([_tensor("features", [0, 3], [])], "empty batch"),
        ([_tensor("features", [11, 3], [1.0] * 33)], "batch of 11 rows exceeds"),
        ([_tensor("a", [1], [1]), _tensor("b", [1], [2])], "missing input(s) 'c'"),
        (
            [
                _tensor("a", [1], [1]),
                _tensor("b", [1], [2]),
                _tensor("c", [1], [3]),
                _tensor("d", [1], [4]),
            ],
            "unknown input 'd'",
        ),
        (
            [_tensor("a", [1], [1]), _tensor("a", [1], [1]), _tensor("c", [1], [3])],
            "input 'a' is given twice",
        ),
        (
            [_tensor("a", [1], [1]), _tensor("b", [2], [2, 3]), _tensor("c", [1], [3])],
            "input 'b' has 2 rows but other inputs have 1",
        ),
        (
            [_tensor("a", [2], [1, 2]), _tensor("b", [2], [2, None]), _tensor("c", [2], [3, 4])],
            "input 'b', row 1: expected a number, got null",
        ),
        (
            [_tensor("a", [1, 2], [1, 2]), _tensor("b", [1], [2]), _tensor("c", [1], [3])],
            "a named feature takes [rows] or [rows, 1]",
        ),
        (
            [_tensor("a", [-1], [1]), _tensor("b", [1], [2]), _tensor("c", [1], [3])],
            "'shape' must be a non-empty list",
        ),
        ([{"name": "a", "shape": [1], "data": [1]}], "missing 'datatype'"),
        ([{**_tensor("a", [1], [1]), "extra": 1}], "unknown field 'extra'"),
        ([], "'inputs' must be a non-empty list"),
    ],
)
def test_v2_errors_name_the_input_and_row(inputs: list[Any], message: str) -> None:
    with pytest.raises(InputError) as info:
        v2_request({"inputs": inputs}, NAMES, 10)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [_tensor("features", [1, 3], [1, 2, 3])], "id": 7}, "'id' must be a string"),
        (
            {"inputs": [_tensor("features", [1, 3], [1, 2, 3])], "outputs": ["score"]},
            "'outputs' must be a list of objects",
        ),
        (
            {"inputs": [_tensor("features", [1, 3], [1, 2, 3])], "parameters": [1]},
            "'parameters' must be an object",
        ),
        (
            {"inputs": [_tensor("features", [1, 3], [1, 2, 3])], "model": "x"},
            "unknown field 'model'",
        ),
        ("features", "V2 body must be a JSON object"),
        ({"inputs": [_tensor("f", [1, 3], [1, 2, 3])], "model_name": 3}, "'model_name' must be a"),
    ],
)
def test_v2_request_fields(body: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        v2_request(body, NAMES, 10)
    assert message in str(info.value)


def test_v2_model_name_and_version_as_kserve_clients_send_them() -> None:
    body = {"inputs": [_tensor("f", [1, 3], [1, 2, 3])], "model_name": "m", "model_version": "4"}
    request = v2_request(body, NAMES, 10)
    assert (request.model_name, request.model_version) == ("m", "4")


def test_v2_nan_from_a_lenient_client_is_named() -> None:
    text = json.dumps({"inputs": [_tensor("features", [2, 3], [1, 2, 3, 4, float("nan"), 6])]})
    with pytest.raises(InputError, match="row 1, feature 'b': NaN"):
        v2_request(parse_json(text.encode()), NAMES, 10)


def test_reasons_parameter() -> None:
    assert reasons_parameter({}, 3) is None
    assert reasons_parameter({"reasons": 2}, 3) == 2
    for bad in (4, -1, 1.0, True, "2"):
        with pytest.raises(InputError, match="'reasons' must be an integer from 0 to 3"):
            reasons_parameter({"reasons": bad}, 3)
