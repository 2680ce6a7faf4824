"""Strict request parsing for the predictor: V1 named instances and V2 (Open Inference) tensors.

Every problem becomes an InputError whose message names the field and the row; nothing is
coerced (a string "1.5", a boolean, a null or a NaN is an error, never a number), except that
a feature the model declares optional (`optional`: a risk model's inputs, which it imputes or
routes, finrisk.compiled) takes a missing value: JSON null, or NaN (binary FP64 data, or a NaN
literal from a lenient client). Infinity is never a value. A categorical input takes its code
(the category's index in the model's metadata), an integer, or a missing value, or the
category's text wherever it takes the code: a string in V1, a BYTES input (one per categorical
input) in V2. Text is read by the training encoder's rule (finrisk.models.encoding.text_code):
a text the model never saw is a missing value there, so it is here, and it scores exactly as a
null would. Text anywhere else (a non-categorical input, the FP64 feature matrix) is refused by
name. No kserve import here: the rules are tested on their own.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from finrisk.models.bands import BAND_NAMES
from finrisk.models.encoding import category_lookup, text_code
from finrisk.serving import protocol
from finrisk.serving.protocol import (
    BINARY_DATA_SIZE,
    BINARY_MEDIA_TYPE,
    BYTES,
    FP64,
    FP64_BYTES,
    HEADER_LENGTH_HEADER,
    JSON_MEDIA_TYPE,
    REASONS_FROM_PARAMETER,
    REASONS_PARAMETER,
    RECOMMENDATIONS_PARAMETER,
)

Matrix = npt.NDArray[np.float64]
Categories = Mapping[str, Sequence[str]]
_NUMBER_TYPES = frozenset({float, int})
V1_FIELDS = frozenset({"instances", "parameters"})
# model_name / model_version are not in the protocol, but kserve's own client sends them.
V2_FIELDS = frozenset({"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
V2_INPUT_FIELDS = frozenset({"name", "shape", "datatype", "data", "parameters"})
_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring = 3, 4, 4, 40


class InputError(ValueError):
    """A request the client must fix (HTTP 400); the message says what and where."""


class UnsupportedMediaType(InputError):
    """A Content-Type the protocol does not speak (HTTP 415)."""


@dataclass
class V2Request:
    matrix: Matrix
    id: str | None = None
    outputs: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    model_name: str | None = None
    model_version: str | None = None


def check_content_type(value: str | None, *, binary: bool = False) -> None:
    """A body without Content-Type is JSON (or the binary extension when its header says so),
    as Open Inference Protocol clients send it; any other type is refused."""
    media = (value or "").split(";", 1)[0].strip().lower()
    if not media:
        return
    allowed = (JSON_MEDIA_TYPE, BINARY_MEDIA_TYPE) if binary else (JSON_MEDIA_TYPE,)
    if media not in allowed:
        raise UnsupportedMediaType(f"content-type must be {' or '.join(allowed)}, got {value!r}")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, binary part) of a request body; all JSON without the extension's header."""
    try:
        return protocol.split_body(body, header_length)
    except protocol.FramingError as exc:
        raise InputError(str(exc)) from None


def parse_json(body: bytes) -> Any:
    """The request body as JSON. orjson rejects NaN / Infinity; the stdlib reads them so that the
    validators can say which field and row hold one."""
    if not body:
        raise InputError("request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except RecursionError:
            raise InputError("request body nests arrays or objects too deeply") from None
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"request body is not valid JSON: {exc}") from None


def _check_rows(n: int, max_rows: int) -> None:
    if n == 0:
        raise InputError("empty batch: send at least one row")
    if n > max_rows:
        raise InputError(f"batch of {n} rows exceeds the limit of {max_rows} rows per request")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    text = _SHORT.repr(value)  # bounded in depth and length: a deeply nested value is fine
    return f"{name} {text[:40]}{'...' if len(text) > 40 else ''}"


def _numbers(
    flat: Sequence[Any] | Matrix,
    where: Callable[[int], str],
    optional: Callable[[int], bool] | None = None,
) -> Matrix:
    """float64 array of `flat`, which must hold only JSON numbers (or be binary FP64 data)
    that are finite; where `optional(i)`, a null or NaN is a missing value (NaN)."""
    if isinstance(flat, np.ndarray):
        return _finite(flat, where, optional)
    kinds = set(map(type, flat))
    if not kinds <= _NUMBER_TYPES:
        allowed = list(flat)
        for i, value in enumerate(flat):
            if value is None and optional is not None and optional(i):
                allowed[i] = math.nan
            elif type(value) not in _NUMBER_TYPES:
                raise InputError(f"{where(i)}: expected a number, got {_describe(value)}")
        flat = allowed
    try:
        values = np.fromiter(flat, dtype=np.float64, count=len(flat))
    except OverflowError:
        for i, value in enumerate(flat):
            try:
                float(value)
            except OverflowError:
                raise InputError(f"{where(i)}: {value} is too large for FP64") from None
        raise
    return _finite(values, where, optional)


def _finite(
    values: Matrix, where: Callable[[int], str], optional: Callable[[int], bool] | None = None
) -> Matrix:
    finite = np.isfinite(values)
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            if math.isnan(values[i]) and optional is not None and optional(i):
                continue
            kind = "NaN" if math.isnan(values[i]) else "infinite"
            raise InputError(f"{where(i)}: {kind} values are not allowed")
    return values


def _category_text(
    flat: Sequence[Any],
    name_of: Callable[[int], str],
    categories: Categories,
    where: Callable[[int], str],
    optional: Callable[[int], bool] | None,
) -> list[Any]:
    """`flat` with each text of a categorical input replaced by its code (text_code: the
    training encoder's rule); text of any other input is left for _numbers to refuse by name."""
    lookups: dict[str, dict[str, float]] = {}
    out = list(flat)
    for i, value in enumerate(flat):
        if type(value) is not str:
            continue
        name = name_of(i)
        if name not in categories:
            continue
        if name not in lookups:
            lookups[name] = category_lookup(categories[name])
        code = text_code(lookups[name], value)
        if math.isnan(code) and not (optional is not None and optional(i)):
            raise InputError(
                f"{where(i)}: {_SHORT.repr(value)} is not a category of {name!r} "
                f"({', '.join(categories[name])})"
            )
        out[i] = code
    return out


def _text_column(
    name: str,
    flat: Sequence[Any] | npt.NDArray[Any],
    categories: Categories,
    label: str,
    optional: Callable[[int], bool] | None,
) -> Matrix:
    """The codes of a BYTES input's category texts (null: missing, where the input may be)."""
    texts = flat.tolist() if isinstance(flat, np.ndarray) else list(flat)
    where = partial(_row_of, label)
    for i, value in enumerate(texts):
        if type(value) is not str and not (value is None and optional is not None and optional(i)):
            raise InputError(
                f"{where(i)}: a BYTES input holds category text, got {_describe(value)}"
            )
    codes = _category_text(texts, lambda _i: name, categories, where, optional)
    return np.array([math.nan if code is None else code for code in codes], dtype=np.float64)


def _takes(categories: Categories) -> str:
    if not categories:
        return f"this model takes {FP64}"
    return (
        f"this model takes {FP64} (codes), and {BYTES} (category text) for its categorical "
        f"input(s) {', '.join(map(repr, categories))}"
    )


def check_codes(
    matrix: Matrix, feature_names: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> Matrix:
    """Categorical columns hold codes 0..k-1 or NaN (missing); anything else is named."""
    for j, name in enumerate(feature_names):
        k = len(categories[name]) if name in categories else None
        if k is None:
            continue
        column = matrix[:, j]
        bad = ~np.isnan(column) & ~np.isin(column, np.arange(k, dtype=np.float64))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"feature {name!r}, row {i}: {float(column[i])!r} is not a category code "
                f"of {name!r} (an integer 0 to {k - 1}, see the model's metadata, or null "
                "when missing)"
            )
    return matrix


def v1_parameters(payload: dict[str, Any]) -> dict[str, Any]:
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InputError("'parameters' must be an object")
    return parameters


def reasons_parameter(parameters: dict[str, Any], maximum: int) -> int | None:
    """The optional "reasons" parameter (how many top reasons per row, 0 = none)."""
    if REASONS_PARAMETER not in parameters:
        return None
    value = parameters[REASONS_PARAMETER]
    if type(value) is not int or not 0 <= value <= maximum:
        raise InputError(
            f"parameter {REASONS_PARAMETER!r} must be an integer from 0 to {maximum}, got {value!r}"
        )
    return value


def recommendations_parameter(parameters: dict[str, Any], maximum: int) -> int:
    """The optional "recommendations" parameter: how many per MEDIUM or HIGH row (0: none)."""
    value = parameters.get(RECOMMENDATIONS_PARAMETER, 0)
    if type(value) is not int or not 0 <= value <= maximum:
        raise InputError(
            f"parameter {RECOMMENDATIONS_PARAMETER!r} must be an integer from 0 to {maximum}, "
            f"got {reprlib.repr(value)}"
        )
    return value


def reasons_from_parameter(parameters: dict[str, Any]) -> str | None:
    """The optional "reasons_from" parameter: explain only the rows of this risk band or a
    higher one (the others get no reasons), so a caller wanting reasons for elevated risk needs
    one call, not a second one for the rows the first showed elevated."""
    if REASONS_FROM_PARAMETER not in parameters:
        return None
    value = parameters[REASONS_FROM_PARAMETER]
    if value not in BAND_NAMES:
        raise InputError(
            f"parameter {REASONS_FROM_PARAMETER!r} must be one of {', '.join(BAND_NAMES)}, "
            f"got {value!r}"
        )
    return str(value)


def v1_matrix(
    payload: Any,
    feature_names: Sequence[str],
    max_rows: int,
    optional: frozenset[str] = frozenset(),
    categories: Categories | None = None,
) -> Matrix:
    """{"instances": [{feature: number, ...}, ...]} -> (rows, features) in model order; a
    categorical feature's value may be its category text."""
    if not isinstance(payload, dict):
        raise InputError('V1 body must be a JSON object {"instances": [...]}')
    unknown = sorted(set(payload) - V1_FIELDS)
    if unknown:
        raise InputError(
            f"unknown field {unknown[0]!r} in the V1 body: send 'instances' (and 'parameters')"
        )
    instances = payload.get("instances")
    if not isinstance(instances, list):
        raise InputError("'instances' must be a list of objects of named features")
    _check_rows(len(instances), max_rows)
    n_features = len(feature_names)
    getter = itemgetter(*feature_names)
    try:
        rows = [getter(row) for row in instances]
        complete = all(len(row) == n_features for row in instances)
    except (KeyError, TypeError):
        complete = False
    if not complete:
        _explain_v1(instances, feature_names)
    if n_features == 1:
        rows = [(value,) for value in rows]

    def where(i: int) -> str:
        return f"row {i // n_features}, feature {feature_names[i % n_features]!r}"

    flat = list(chain.from_iterable(rows))
    may_miss = _by_column(feature_names, optional)
    if categories and str in set(map(type, flat)):
        flat = _category_text(
            flat, lambda i: feature_names[i % n_features], categories, where, may_miss
        )
    return _numbers(flat, where, may_miss).reshape(len(instances), n_features)


def _by_column(
    feature_names: Sequence[str], optional: frozenset[str]
) -> Callable[[int], bool] | None:
    """optional(i) for row-major values of all features."""
    if not optional:
        return None
    mask = [name in optional for name in feature_names]
    return lambda i: mask[i % len(mask)]


def _explain_v1(instances: list[Any], feature_names: Sequence[str]) -> None:
    names = set(feature_names)
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise InputError(f"row {i}: expected an object of named features, got {_describe(row)}")
        missing = [name for name in feature_names if name not in row]
        if missing:
            raise InputError(f"row {i}: missing feature(s) {', '.join(map(repr, missing))}")
        extra = [key for key in row if key not in names]
        if extra:
            raise InputError(
                f"row {i}: unknown feature(s) {', '.join(map(repr, extra))}; this model takes "
                f"{', '.join(feature_names)}"
            )
    raise InputError("instances do not match the model's features")  # unreachable in practice


def _shape(item: dict[str, Any], label: str) -> list[int]:
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InputError(f"{label}: 'shape' must be a non-empty list of non-negative integers")
    return shape


def _flatten(data: Any, depth: int, label: str) -> list[Any] | Matrix:
    """Row-major values of `data`, given flat or nested as deep as the shape (OIP allows both),
    or as binary data (already flat)."""
    if isinstance(data, np.ndarray):
        return data
    if not isinstance(data, list):
        raise InputError(f"{label}: 'data' must be a list")
    flat: list[Any] = data
    for _ in range(depth - 1):
        if not flat or not isinstance(flat[0], list):
            break
        if not all(isinstance(part, list) for part in flat):
            raise InputError(f"{label}: 'data' mixes nested lists and values")
        flat = list(chain.from_iterable(flat))
    return flat


def v2_request(
    payload: Any,
    feature_names: Sequence[str],
    max_rows: int,
    binary: bytes = b"",
    optional: frozenset[str] = frozenset(),
    categories: Categories | None = None,
) -> V2Request:
    """Open Inference Protocol request -> V2Request (rows, features) in model order.

    Either one FP64 input per feature (shape [n] or [n, 1]) or a single FP64 input of shape
    [n, n_features] in the model's feature order; each input's values in its `data`, or in
    `binary` (the body after the JSON part) when it declares `binary_data_size`. A categorical
    feature's input may be BYTES instead: its category texts.
    """
    categories = categories or {}
    if not isinstance(payload, dict):
        raise InputError('V2 body must be a JSON object {"inputs": [...]}')
    unknown = sorted(set(payload) - V2_FIELDS)
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} in the inference request")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError(f"'id' must be a string, got {_describe(request_id)}")
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InputError("'parameters' must be an object")
    outputs = _requested_outputs(payload.get("outputs"))
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("'inputs' must be a non-empty list of tensors")
    for k, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InputError(f"inputs[{k}] must be an object")
    _attach_binary(inputs, binary)
    for k, item in enumerate(inputs):
        for key in ("name", "shape", "datatype", "data"):
            if key not in item:
                raise InputError(f"inputs[{k}]: missing {key!r}")
        if not isinstance(item["name"], str):
            raise InputError(f"inputs[{k}]: 'name' must be a string")
        extra = sorted(set(item) - V2_INPUT_FIELDS)
        if extra:
            raise InputError(f"input {item['name']!r}: unknown field {extra[0]!r}")
        # BYTES only ever carries category text: a model without categories takes none.
        if item["datatype"] not in ((FP64, BYTES) if categories else (FP64,)):
            raise InputError(
                f"input {item['name']!r}: datatype {item['datatype']!r} is not accepted; "
                f"{_takes(categories)}"
            )
    n_features = len(feature_names)
    if len(inputs) == 1 and _is_matrix(inputs[0], feature_names):
        if inputs[0]["datatype"] == BYTES:
            raise InputError(
                f"input {inputs[0]['name']!r}: the feature matrix is {FP64} (categories as "
                f"codes), not {BYTES}; {_takes(categories)}, one input per feature"
            )
        matrix = _matrix_input(inputs[0], feature_names, max_rows, optional)
    else:
        matrix = _named_inputs(inputs, feature_names, max_rows, optional, categories)
    assert matrix.shape[1] == n_features
    names = {}
    for key in ("model_name", "model_version"):
        value = payload.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{key!r} must be a string, got {_describe(value)}")
        names[key] = value
    return V2Request(matrix=matrix, id=request_id, outputs=outputs, parameters=parameters, **names)


def _attach_binary(inputs: list[dict[str, Any]], binary: bytes) -> None:
    """Give each input that declares `binary_data_size` its values from `binary`, in order."""
    offset = 0
    for k, item in enumerate(inputs):
        parameters = item.get("parameters")
        if parameters is None:
            continue
        label = f"inputs[{k}]"
        if not isinstance(parameters, dict):
            raise InputError(f"{label}: 'parameters' must be an object")
        size = parameters.get(BINARY_DATA_SIZE)
        if size is None:
            continue
        text = item.get("datatype") == BYTES  # each element's 4-byte length, then its bytes
        if text and (type(size) is not int or size < 0):
            raise InputError(f"{label}: {BINARY_DATA_SIZE} must be a byte count, got {size!r}")
        if not text and (type(size) is not int or size < 0 or size % FP64_BYTES):
            raise InputError(
                f"{label}: {BINARY_DATA_SIZE} must be a whole number of FP64 values "
                f"({FP64_BYTES} bytes each), got {size!r}"
            )
        if "data" in item:
            raise InputError(f"{label}: give 'data' or {BINARY_DATA_SIZE}, not both")
        if offset + size > len(binary):
            raise InputError(
                f"{label}: {BINARY_DATA_SIZE} {size} runs past the body's end "
                f"({len(binary) - offset} binary bytes left; is {HEADER_LENGTH_HEADER} set?)"
            )
        if text:
            try:
                item["data"] = protocol.from_raw_contents(binary[offset : offset + size], BYTES)
            except protocol.FramingError as exc:
                raise InputError(f"{label}: {exc}") from None
        else:
            item["data"] = protocol.fp64_values(binary, size, offset)
        offset += size
    if offset != len(binary):
        raise InputError(
            f"the body holds {len(binary) - offset} bytes after the JSON part that no input's "
            f"{BINARY_DATA_SIZE} accounts for"
        )


def _requested_outputs(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InputError("'outputs' must be a list of objects with a 'name'")
    return [o["name"] for o in outputs]


def _is_matrix(item: dict[str, Any], feature_names: Sequence[str]) -> bool:
    shape = item.get("shape")
    if not isinstance(shape, list) or len(shape) != 2:
        return False
    # A single named feature of shape [n, 1] is the named form, not a one-column matrix.
    return not (len(feature_names) == 1 and item["name"] == feature_names[0])


def _matrix_input(
    item: dict[str, Any],
    feature_names: Sequence[str],
    max_rows: int,
    optional: frozenset[str] = frozenset(),
) -> Matrix:
    label = f"input {item['name']!r}"
    rows, width = _shape(item, label)
    n_features = len(feature_names)
    if width != n_features:
        raise InputError(
            f"{label} has shape [{rows}, {width}]; this model takes [rows, {n_features}] with "
            f"columns in this order: {', '.join(feature_names)}"
        )
    _check_rows(rows, max_rows)
    flat = _flatten(item["data"], 2, label)
    if len(flat) != rows * width:
        raise InputError(
            f"{label}: shape [{rows}, {width}] needs {rows * width} values, got {len(flat)}"
        )

    def where(i: int) -> str:
        return f"{label}, row {i // n_features}, feature {feature_names[i % n_features]!r}"

    return _numbers(flat, where, _by_column(feature_names, optional)).reshape(rows, width)


def _row_of(label: str, i: int) -> str:
    return f"{label}, row {i}"


def _named_inputs(
    inputs: list[dict[str, Any]],
    feature_names: Sequence[str],
    max_rows: int,
    optional: frozenset[str] = frozenset(),
    categories: Categories | None = None,
) -> Matrix:
    categories = categories or {}
    position = {name: j for j, name in enumerate(feature_names)}
    seen: dict[str, int] = {}
    columns: list[tuple[int, dict[str, Any]]] = []
    for item in inputs:
        name = item["name"]
        if name not in position:
            raise InputError(
                f"unknown input {name!r}; this model takes one FP64 input per feature "
                f"({', '.join(feature_names)}) or one [rows, {len(feature_names)}] FP64 tensor"
            )
        if name in seen:
            raise InputError(f"input {name!r} is given twice")
        if item["datatype"] == BYTES and name not in categories:
            raise InputError(
                f"input {name!r}: datatype {BYTES!r} (text) is not accepted for {name!r}, which "
                f"is not categorical; {_takes(categories)}"
            )
        seen[name] = 1
        columns.append((position[name], item))
    missing = [name for name in feature_names if name not in seen]
    if missing:
        raise InputError(f"missing input(s) {', '.join(map(repr, missing))}")
    n_rows: int | None = None
    matrix: Matrix | None = None
    for j, item in columns:
        label = f"input {item['name']!r}"
        shape = _shape(item, label)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InputError(
                f"{label} has shape {shape}; a named feature takes [rows] or [rows, 1]"
            )
        rows = shape[0]
        if n_rows is None:
            _check_rows(rows, max_rows)
            n_rows = rows
            matrix = np.empty((rows, len(feature_names)), dtype=np.float64)
        elif rows != n_rows:
            raise InputError(f"{label} has {rows} rows but other inputs have {n_rows}")
        flat = _flatten(item["data"], len(shape), label)
        if len(flat) != rows:
            raise InputError(f"{label}: shape {shape} needs {rows} values, got {len(flat)}")
        assert matrix is not None
        may_miss = (lambda _i: True) if item["name"] in optional else None
        if item["datatype"] == BYTES:
            matrix[:, j] = _text_column(item["name"], flat, categories, label, may_miss)
        else:
            matrix[:, j] = _numbers(flat, partial(_row_of, label), may_miss)
    assert matrix is not None
    return matrix
