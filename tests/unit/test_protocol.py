"""The Open Inference Protocol module both ends share: binary framing round trips."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from finrisk.serving import protocol


def test_a_binary_request_splits_back_into_its_json_and_values() -> None:
    rows = np.array([[1.5, -2.0], [3.25, 1e300]])
    tensor = {"name": "features", "shape": [2, 2], "datatype": protocol.FP64}
    body, headers = protocol.binary_request({"inputs": [tensor]}, tensor, rows)
    assert headers["content-type"] == protocol.BINARY_MEDIA_TYPE
    json_part, binary = protocol.split_body(body, headers[protocol.HEADER_LENGTH_HEADER])
    sent = orjson.loads(json_part)["inputs"][0]
    assert sent["parameters"] == {protocol.BINARY_DATA_SIZE: rows.nbytes} and "data" not in sent
    values = protocol.fp64_values(binary, sent["parameters"][protocol.BINARY_DATA_SIZE], 0)
    assert np.array_equal(values.reshape(rows.shape), rows)
    values[0] = 0.0  # a writable copy, not a view of the body


@pytest.mark.parametrize("length", ["0", "-1", "x", "999"])
def test_a_wrong_header_length_names_the_header(length: str) -> None:
    with pytest.raises(protocol.FramingError, match=protocol.HEADER_LENGTH_HEADER):
        protocol.split_body(b'{"inputs": []}', length)


def test_without_the_header_the_body_is_all_json() -> None:
    assert protocol.split_body(b"{}", None) == (b"{}", b"")


@pytest.mark.parametrize(
    ("values", "datatype"),
    [
        (np.array([[0.1, -2.5], [np.nan, 1e300]]), "FP64"),
        (np.array([True, False, True]), "BOOL"),
        (np.array(["LOW", "", "HIGH", "été"]), "BYTES"),
    ],
)
def test_raw_contents_read_back_as_written(values: np.ndarray, datatype: str) -> None:
    raw = protocol.raw_contents(values, datatype)
    back = protocol.from_raw_contents(raw, datatype)
    if datatype == "FP64":
        np.testing.assert_array_equal(back, values.ravel())
    else:
        assert back.tolist() == values.ravel().tolist()


def test_raw_bytes_are_length_prefixed_little_endian() -> None:
    assert protocol.raw_contents(np.array(["ab", ""]), "BYTES") == b"\x02\0\0\0ab\0\0\0\0"
    assert protocol.raw_contents(np.array([1.0]), "FP64") == np.array([1.0], "<f8").tobytes()


@pytest.mark.parametrize(
    ("raw", "datatype", "message"),
    [
        (b"\0" * 13, "FP64", "13 bytes is not a whole number of FP64 values"),
        (b"\x05\0\0\0ab", "BYTES", "a BYTES element of 5 bytes runs past"),
        (b"\x02\0", "BYTES", "inside a length prefix"),
    ],
)
def test_broken_raw_contents_say_what_is_wrong(raw: bytes, datatype: str, message: str) -> None:
    with pytest.raises(protocol.FramingError, match=message):
        protocol.from_raw_contents(raw, datatype)
