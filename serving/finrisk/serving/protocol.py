"""The Open Inference Protocol (V2) as finrisk speaks it: one definition for the predictor that
answers it and the bridge that calls it.

- Media types and the binary tensor data extension (as KServe and Triton implement it): the
  JSON part's length in a header, the tensors' raw little-endian bytes after it, in the order
  of the inputs that declare `binary_data_size` instead of `data`.
- The names of finrisk's inputs, outputs and parameters: what the predictor's metadata
  advertises and the bridge reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

JSON_MEDIA_TYPE = "application/json"
BINARY_MEDIA_TYPE = "application/octet-stream"
HEADER_LENGTH_HEADER = "inference-header-content-length"
BINARY_DATA_SIZE = "binary_data_size"
BINARY_EXTENSION = "binary_tensor_data"
FP64 = "FP64"
FP64_BYTES = 8
# Binary FP64 on the wire: little-endian whatever the host.
FP64_WIRE = "<f8"

# finrisk's extension: the reference profile of a served version's training data
# (finrisk.monitoring.profile), which the bridge compares live traffic with.
PROFILE_PATH = "/v2/models/{model}/versions/{version}/profile"

# The 2-D input's name; the predictor tells the matrix form by its shape, not its name.
MATRIX_INPUT = "features"
# Input metadata parameters (docs/serving.md, "Missing values and categories"): the input may
# be missing (null / NaN); a categorical input's categories (its code is the index in the
# list); and the datatypes an input takes: a categorical input takes its code (FP64) or its
# category text (BYTES, one tensor per categorical input; V1 takes the text in place of the
# code).
OPTIONAL_PARAMETER = "optional"
CATEGORIES_PARAMETER = "categories"
DATATYPES_PARAMETER = "datatypes"
# The detector's outputs, and its threshold among the response parameters.
SCORE_OUTPUT = "score"
FLAG_OUTPUT = "is_anomaly"
THRESHOLD_PARAMETER = "threshold"
# The risk model's outputs, and its band edges among the response parameters (LOW below low).
PROBABILITY_OUTPUT = "probability"
BAND_OUTPUT = "band"
REASONS_OUTPUT = "reasons"
CONTRIBUTIONS_OUTPUT = "reason_contributions"
# Per row, a JSON array of recommendations (finrisk.models.recommendations) as text: "" for the
# rows not searched (LOW), "[]" for an elevated row no allowed change brings down.
RECOMMENDATIONS_OUTPUT = "recommendations"
BAND_LOW_PARAMETER = "band_low"
BAND_HIGH_PARAMETER = "band_high"
# Request parameters: how many top reasons per row (0: none), and explain only the rows of
# this band or higher (the predictor leaves the others empty).
REASONS_PARAMETER = "reasons"
REASONS_FROM_PARAMETER = "reasons_from"
# Request parameter: up to this many recommendations per MEDIUM or HIGH row (absent or 0: none,
# the output is not computed; the search costs hundreds of model evaluations per elevated row).
RECOMMENDATIONS_PARAMETER = "recommendations"


class FramingError(ValueError):
    """A binary request whose framing is wrong; the message says how."""


def binary_request(
    request: dict[str, Any], tensor: dict[str, Any], values: npt.NDArray[np.float64]
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of `request` with `tensor` (one of its inputs) carrying `values` as
    binary data after the JSON part."""
    data = np.ascontiguousarray(values, dtype=np.float64)
    tensor["parameters"] = {**tensor.get("parameters", {}), BINARY_DATA_SIZE: data.nbytes}
    header = orjson.dumps(request)
    headers = {"content-type": BINARY_MEDIA_TYPE, HEADER_LENGTH_HEADER: str(len(header))}
    return header + data.astype(FP64_WIRE, copy=False).tobytes(), headers


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, binary part) of a request body; all JSON without the extension's header."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise FramingError(
            f"{HEADER_LENGTH_HEADER} must be the JSON part's length, 1 to {len(body)} bytes; "
            f"got {header_length!r}"
        )
    return body[:length], body[length:]


def fp64_values(binary: bytes, size: int, offset: int) -> npt.NDArray[np.float64]:
    """`size` bytes of binary FP64 from `offset`, as a writable native-order array."""
    values = np.frombuffer(binary, dtype=FP64_WIRE, count=size // FP64_BYTES, offset=offset)
    return values.astype(np.float64)


def risk_parameters(low: float, high: float) -> Mapping[str, float]:
    return {BAND_LOW_PARAMETER: low, BAND_HIGH_PARAMETER: high}


# Raw tensor contents (gRPC's raw_input_contents / raw_output_contents, and the binary
# extension's bytes): fixed-size types as little-endian values, BYTES as a 4-byte
# little-endian length before each element.
BOOL = "BOOL"
BYTES = "BYTES"
_LENGTH = np.dtype("<u4")
_FIXED_WIRE = {FP64: np.dtype(FP64_WIRE), BOOL: np.dtype(np.bool_)}


def raw_contents(values: npt.NDArray[Any], datatype: str) -> bytes:
    """`values` as raw tensor contents of `datatype` (FP64, BOOL or BYTES), row-major."""
    if datatype == BYTES:
        parts = []
        for item in values.ravel().tolist():
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(np.array(len(data), dtype=_LENGTH).tobytes())
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=_FIXED_WIRE[datatype]).tobytes()


def from_raw_contents(raw: bytes, datatype: str) -> npt.NDArray[Any]:
    """The values of raw tensor contents (flat); BYTES as text. FramingError when the bytes
    do not hold whole values of `datatype`."""
    if datatype == BYTES:
        items, offset = [], 0
        while offset < len(raw):
            if offset + _LENGTH.itemsize > len(raw):
                raise FramingError(f"BYTES contents end inside a length prefix at byte {offset}")
            size = int(np.frombuffer(raw, dtype=_LENGTH, count=1, offset=offset)[0])
            offset += _LENGTH.itemsize
            if offset + size > len(raw):
                raise FramingError(f"a BYTES element of {size} bytes runs past the contents")
            try:
                items.append(raw[offset : offset + size].decode())
            except UnicodeDecodeError:
                raise FramingError(
                    f"BYTES element {len(items)} (at byte {offset}) is not UTF-8 text"
                ) from None
            offset += size
        return np.array(items, dtype=object)
    wire = _FIXED_WIRE.get(datatype)
    if wire is None:
        raise FramingError(f"datatype {datatype!r} has no raw form here")
    if len(raw) % wire.itemsize:
        raise FramingError(
            f"{len(raw)} bytes is not a whole number of {datatype} values "
            f"({wire.itemsize} bytes each)"
        )
    return np.frombuffer(raw, dtype=wire).astype(wire.newbyteorder("="))


def parameter_value(parameter: Any) -> Any:
    """An Open Inference Protocol gRPC InferParameter as the JSON value it stands for (int64 ->
    int, bool -> bool, ...): how the predictor reads a request's and the bridge a response's."""
    kind = parameter.WhichOneof("parameter_choice")
    return None if kind is None else getattr(parameter, kind)
