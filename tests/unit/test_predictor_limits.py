"""What the predictor promises any client: standard Open Inference Protocol bodies (no
Content-Type), versioned routes, hard limits answered 413 / 400 / 503 and never a 5xx, and an
OpenAPI document listing every status it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from finrisk.serving.predictor.app import build_app
from finrisk.serving.predictor.model import DetectorPredictor, FinriskModel
from tests.support import trained_models
from tests.unit.test_predictor_app import DET, _binary_body, _frame, _predictor

LIMIT = 4_096


@pytest.fixture(scope="module")
def det() -> FinriskModel:
    return _predictor(DetectorPredictor, DET, trained_models.detector("supervised"), max_rows=50)


@pytest.fixture(scope="module")
def client(det: FinriskModel) -> Iterator[TestClient]:
    with TestClient(build_app([det], max_body_bytes=LIMIT)) as c:
        yield c


def _tensor(det: FinriskModel, rows: int = 3) -> tuple[dict[str, Any], np.ndarray]:
    matrix = _frame(DET).loc[:, list(det.scorer.feature_names)].to_numpy()[:rows]
    return {"name": "features", "shape": list(matrix.shape), "datatype": "FP64"}, matrix


def test_a_body_without_content_type_is_json_or_binary_as_oip_clients_send_it(
    client: TestClient, det: FinriskModel
) -> None:
    tensor, matrix = _tensor(det)
    json_body = orjson.dumps({"inputs": [{**tensor, "data": matrix.ravel().tolist()}]})
    plain = client.post(f"/v2/models/{DET}/infer", content=json_body)  # no header at all
    assert plain.status_code == 200, plain.text
    binary, headers = _binary_body([(tensor, matrix)])
    del headers["content-type"]
    raw = client.post(f"/v2/models/{DET}/infer", content=binary, headers=headers)
    assert raw.status_code == 200, raw.text
    assert raw.json()["outputs"] == plain.json()["outputs"]
    v1 = client.post(
        f"/v1/models/{DET}:predict",
        content=orjson.dumps({"instances": _frame(DET).iloc[:2].to_dict(orient="records")}),
    )
    assert v1.status_code == 200, v1.text


def test_versioned_routes_answer_for_the_served_version_and_404_for_others(
    client: TestClient, det: FinriskModel
) -> None:
    served = det.scorer.version
    assert client.get(f"/v2/models/{DET}/versions/{served}").json()["versions"] == [served]
    ready = client.get(f"/v2/models/{DET}/versions/{served}/ready")
    assert ready.json() == {"name": DET, "ready": True}
    tensor, matrix = _tensor(det)
    body = {"inputs": [{**tensor, "data": matrix.ravel().tolist()}]}
    assert client.post(f"/v2/models/{DET}/versions/{served}/infer", json=body).status_code == 200
    for path in ("", "/ready"):
        other = client.get(f"/v2/models/{DET}/versions/99{path}")
        assert other.status_code == 404 and f"serves version {served}, not 99" in other.text
    assert client.post(f"/v2/models/{DET}/versions/99/infer", json=body).status_code == 404


@pytest.fixture(scope="module")
def roomy(det: FinriskModel) -> Iterator[TestClient]:
    """The same model behind the default body limit (64 MiB)."""
    with TestClient(build_app([det])) as c:
        yield c


@pytest.mark.parametrize("depth", [500, 1_100, 100_000])
def test_deeply_nested_json_is_a_400_not_a_500(roomy: TestClient, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    v2 = roomy.post(f"/v2/models/{DET}/infer", content=b'{"inputs": [{"data": ' + nested + b"}]}")
    v1 = roomy.post(f"/v1/models/{DET}:predict", content=b'{"instances": ' + nested + b"}")
    for response in (v2, v1):
        assert response.status_code == 400, (depth, response.text)


def test_a_declared_length_over_the_limit_is_refused_before_reading(client: TestClient) -> None:
    response = client.post(
        f"/v2/models/{DET}/infer",
        content=b"{}",
        headers={"content-length": str(LIMIT + 1), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert f"{LIMIT + 1} bytes exceeds {LIMIT}" in response.json()["error"]


def test_a_streamed_body_is_cut_off_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1_000  # no Content-Length: chunked

    response = client.post(f"/v2/models/{DET}/infer", content=chunks())
    assert response.status_code == 413 and "exceeds 4096 bytes" in response.json()["error"]
    bad = client.post(f"/v2/models/{DET}/infer", content=b"{}", headers={"content-length": "x"})
    assert bad.status_code in (400, 413)  # the server may refuse a bad length itself


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_past_the_concurrency_limit_the_answer_is_503_with_retry_after(
    det: FinriskModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()
    original = DetectorPredictor.__call__

    async def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        await gate.wait()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(DetectorPredictor, "__call__", slow)
    tensor, matrix = _tensor(det)
    body = {"inputs": [{**tensor, "data": matrix.ravel().tolist()}]}
    app = build_app([det], max_concurrency=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as ac:
        first = asyncio.create_task(ac.post(f"/v2/models/{DET}/infer", json=body))
        await entered.wait()
        busy = await ac.post(f"/v2/models/{DET}/infer", json=body)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        gate.set()
        assert (await first).status_code == 200
        assert (await ac.post(f"/v2/models/{DET}/infer", json=body)).status_code == 200


def test_the_openapi_document_lists_every_status_and_no_unused_one(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    infer = spec["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert set(infer["responses"]) == {"200", "400", "404", "413", "415", "503"}
    assert "inputs" in str(infer["requestBody"])
    assert set(
        spec["paths"]["/v2/models/{model_name}/versions/{model_version}"]["get"]["responses"]
    ) == {
        "200",
        "404",
        "503",
    }
    for operations in spec["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]  # answered as 400
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_no_route_unloads_a_model_or_answers_501(client: TestClient) -> None:
    assert client.post(f"/v2/repository/models/{DET}/unload").status_code in (404, 405)
    assert client.post(f"/v1/models/{DET}:explain", json={"instances": []}).status_code in (
        404,
        405,
    )
    assert client.get(f"/v2/models/{DET}/ready").status_code == 200  # still served
