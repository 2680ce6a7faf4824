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
