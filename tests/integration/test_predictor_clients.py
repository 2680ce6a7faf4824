"""The live predictor as others call it: Triton's Open Inference Protocol client (what KServe
users call with; it sends no Content-Type), and property-based fuzzing of every operation in
the predictor's own OpenAPI document (schemathesis): no 5xx, and only the statuses and media
types the document lists."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings

from tests.support import trained_models
from tests.support.predictor_process import Served

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def oip(served: Served) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=served.url.removeprefix("http://"))


def _version(served: Served, name: str) -> str:
    return str(httpx.get(f"{served.url}/v2/models/{name}", timeout=10).json()["versions"][0])


def test_health_metadata_and_readiness_through_the_triton_client(
    oip: triton.InferenceServerClient, served: Served
) -> None:
    assert oip.is_server_live() and oip.is_server_ready()
    assert "binary_tensor_data" in oip.get_server_metadata()["extensions"]
    for name in (served.detector, served.risk):
        version = _version(served, name)
        assert oip.is_model_ready(name) and oip.is_model_ready(name, model_version=version)
        metadata = oip.get_model_metadata(name, model_version=version)
        assert metadata["name"] == name and metadata["versions"] == [version]
        assert not oip.is_model_ready(name, model_version="999")  # not the version served


@pytest.mark.parametrize("binary", [False, True], ids=["json-tensors", "binary-tensors"])
@pytest.mark.parametrize("kind", ["detector", "risk"])
def test_inference_through_the_triton_client_equals_plain_rest(
    oip: triton.InferenceServerClient, served: Served, kind: str, binary: bool
) -> None:
    name = served.detector if kind == "detector" else served.risk
    metadata = httpx.get(f"{served.url}/v2/models/{name}", timeout=10).json()
    names = [tensor["name"] for tensor in metadata["inputs"]]
    if kind == "detector":
        frame, _ = trained_models.detector_frame(n=12, seed=31)
    else:
        frame, _ = trained_models.risk_frame(n=6, seed=32)
    matrix = frame.loc[:, names].to_numpy(dtype=np.float64)
    tensor = triton.InferInput("features", list(matrix.shape), "FP64")
    tensor.set_data_from_numpy(matrix, binary_data=binary)
    first = metadata["outputs"][0]["name"]  # score, or probability
    result = oip.infer(
        name,
        [tensor],
        model_version=_version(served, name),
        outputs=[triton.InferRequestedOutput(first, binary_data=False)],
    )
    plain = httpx.post(
        f"{served.url}/v2/models/{name}/infer",
        json={
            "inputs": [
                {
                    "name": "features",
                    "shape": list(matrix.shape),
                    "datatype": "FP64",
                    "data": matrix.ravel().tolist(),
                }
            ]
        },
        timeout=30,
    ).json()
    expected = next(out for out in plain["outputs"] if out["name"] == first)["data"]
    np.testing.assert_array_equal(result.as_numpy(first), np.asarray(expected))


# schemathesis' own pytest plugin does not run on this pytest (9.2): each operation's strategy
# is drawn with hypothesis directly, which is what the plugin does.
EXAMPLES_PER_OPERATION = 25


def test_no_request_the_document_allows_gets_a_5xx_or_an_undocumented_answer(
    served: Served,
) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    checked = 0
    for operation in operations:
        if operation.path == "/v2/repository/models/{model_name}/load":
            continue  # a reload is an operator's act, driven in test_predictor_http.py

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: Any) -> None:
            nonlocal checked
            response = case.call(base_url=served.url)
            checked += 1
            assert response.status_code < 500 or response.status_code == 503, (
                case.as_curl_command(),
                response.text[:300],
            )
            case.validate_response(response)

        call()
    assert checked >= 100  # bounded, but really run
