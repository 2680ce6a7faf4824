"""`finrisk serve` as a real process against the real MLflow server, over real HTTP.

Two small models are registered under unique names with alias `champion`; the predictor runs
on a free loopback port (started here, ended in teardown) and a plain httpx client speaks V1
and spec-conformant Open Inference Protocol JSON to it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from finrisk.stack.process import log_tail
from tests.support import trained_models
from tests.support.predictor_process import Served, register

pytestmark = pytest.mark.integration


def test_binds_loopback_only(served: Served) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = {line.split()[1] for line in listening if line.split()[3] == "0A"}  # 0A = LISTEN
    assert f"0100007F:{port:04X}" in local
    assert f"00000000:{port:04X}" not in local


def test_v1_predict(served: Served, client: httpx.Client) -> None:
    model = trained_models.detector("supervised")
    frame, _ = trained_models.detector_frame(n=30, seed=21)
    response = client.post(
        f"/v1/models/{served.detector}:predict", json={"instances": frame.to_dict(orient="records")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == served.detector and body["model_version"] == "1"
    np.testing.assert_allclose(
        [p["score"] for p in body["predictions"]], model.anomaly_score(frame), atol=1e-12, rtol=0
    )
    assert [p["is_anomaly"] for p in body["predictions"]] == [bool(v) for v in model.predict(frame)]


def test_v2_infer_with_spec_conformant_json(served: Served, client: httpx.Client) -> None:
    model = trained_models.risk_model("hgb")
    frame, _ = trained_models.risk_frame(n=8, seed=22)
    names = list(model.feature_names_)
    # What any Open Inference Protocol client sends: named FP64 inputs, explicit JSON bytes.
    request = {
        "id": "oip-1",
        "inputs": [
            {"name": n, "shape": [len(frame)], "datatype": "FP64", "data": frame[n].tolist()}
            for n in names
        ],
        "outputs": [{"name": "probability"}, {"name": "band"}],
    }
    response = client.post(
        f"/v2/models/{served.risk}/infer",
        content=json.dumps(request),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["id"] == "oip-1" and body["model_name"] == served.risk and body["model_version"] == "1"
    )
    outputs = {o["name"]: o for o in body["outputs"]}
    assert set(outputs) == {"probability", "band"}
    np.testing.assert_allclose(
        outputs["probability"]["data"], model.risk_probability(frame), atol=1e-12, rtol=0
    )
    assert outputs["band"]["data"] == list(model.predict_band(frame))
    # The same rows as one [rows, features] tensor, with top reasons.
    tensor = {
        "inputs": [
            {
                "name": "features",
                "shape": [len(frame), len(names)],
                "datatype": "FP64",
                "data": frame[names].to_numpy().ravel().tolist(),
            }
        ]
    }
    body = client.post(f"/v2/models/{served.risk}/infer", json=tensor).json()
    assert isinstance(body["id"], str) and body["id"]
    by_name = {o["name"]: o for o in body["outputs"]}
    assert by_name["reasons"]["shape"] == [len(frame), 3]
    assert by_name["probability"]["data"] == outputs["probability"]["data"]


@pytest.mark.parametrize("binary", [False, True])
def test_kserve_inference_client_interoperates(served: Served, binary: bool) -> None:
    """kserve's own Open Inference Protocol client (the one KServe transformers use), with JSON
    tensors and with the binary tensor data extension."""
    from finrisk.serving.predictor.kserve_import import kserve

    model = trained_models.detector("supervised")
    frame, _ = trained_models.detector_frame(n=12, seed=25)
    inputs = []
    for name in model.feature_names_:
        tensor = kserve.InferInput(name=name, shape=[len(frame)], datatype="FP64")
        tensor.set_data_from_numpy(frame[name].to_numpy(dtype=np.float64), binary_data=binary)
        inputs.append(tensor)

    async def call() -> tuple[Any, bool, bool]:
        config = kserve.RESTConfig(protocol="v2", retries=0, timeout=30)
        client = kserve.InferenceRESTClient(config=config)
        try:
            request = kserve.InferRequest(
                model_name=served.detector, infer_inputs=inputs, request_id="kc-1"
            )
            response = await client.infer(served.url, request, model_name=served.detector)
            ready = await client.is_model_ready(served.url, served.detector)
            live = await client.is_server_live(served.url)
        finally:
            await client.close()
        return response, ready, live

    response, ready, live = asyncio.run(call())
    assert ready and live
    # (kserve's InferResponse drops model_version on parsing; the raw JSON carries it, see above.)
    assert response.id == "kc-1" and response.model_name == served.detector
    outputs = {o.name: o for o in response.outputs}
    np.testing.assert_allclose(
        outputs["score"].as_numpy(), model.anomaly_score(frame), atol=1e-12, rtol=0
    )
    assert outputs["is_anomaly"].as_numpy().tolist() == [bool(v) for v in model.predict(frame)]


def test_metadata_and_readiness(served: Served, client: httpx.Client) -> None:
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get(f"/v2/models/{served.detector}/ready").json() == {
        "name": served.detector,
        "ready": True,
    }
    meta = client.get(f"/v2/models/{served.risk}").json()
    assert meta["name"] == served.risk and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == list(
        trained_models.risk_model("hgb").feature_names_
    )
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("probability", "FP64"),
        ("band", "BYTES"),
        ("reasons", "BYTES"),
        ("reason_contributions", "FP64"),
        ("recommendations", "BYTES"),
    ]
    v1 = client.get(f"/v1/models/{served.detector}").json()
    assert v1["ready"] is True and v1["source"] == f"models:/{served.detector}@champion"
    assert v1["threshold"] == trained_models.detector("supervised").threshold_


def test_prometheus_metrics(served: Served, client: httpx.Client) -> None:
    client.post(f"/v1/models/{served.detector}:predict", json={"instances": [{}]})
    text = client.get("/metrics").text
    assert (
        f'finrisk_predictor_requests_total{{model="{served.detector}",protocol="v1",status="400"}}'
        in text
    )
    assert f'finrisk_predictor_model_version{{model="{served.detector}"}}' in text
    assert "finrisk_predictor_request_seconds_bucket" in text


def _v2(names: list[str], data: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "features",
                "shape": [len(data) // max(1, len(names)), len(names)],
                "datatype": "FP64",
                "data": data,
            }
        ],
        **extra,
    }


BAD = [
    (
        "v1",
        {"instances": [{"amount_z": 1, "velocity": 2, "night": 0}]},
        "row 0: missing feature(s) 'balance_ratio'",
    ),
    (
        "v1",
        {"instances": [{"amount_z": 1, "velocity": 2, "night": 0, "balance_ratio": 1, "x": 1}]},
        "row 0: unknown feature(s) 'x'",
    ),
    (
        "v1",
        {"instances": [{"amount_z": 1, "velocity": "2", "night": 0, "balance_ratio": 1}]},
        "row 0, feature 'velocity': expected a number, got str",
    ),
    (
        "v1",
        {"instances": [{"amount_z": 1, "velocity": 2, "night": False, "balance_ratio": 1}]},
        "row 0, feature 'night': expected a number, got bool",
    ),
    ("v1", {"instances": []}, "empty batch"),
    (
        "v1",
        {"instances": [{"amount_z": 1, "velocity": 2, "night": 0, "balance_ratio": 1}] * 101},
        "batch of 101 rows exceeds the limit of 100",
    ),
    (
        "v2",
        _v2(["a"] * 4, [1, 2, 3, None]),
        "row 0, feature 'balance_ratio': expected a number, got null",
    ),
    ("v2", _v2(["a"] * 3, [1, 2, 3]), "this model takes [rows, 4]"),
    (
        "v2",
        {
            "inputs": [
                {"name": "features", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}
            ]
        },
        "datatype 'INT64' is not accepted",
    ),
    (
        "v2",
        {"inputs": [{"name": "amount_z", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        "missing input(s) 'velocity', 'night', 'balance_ratio'",
    ),
    ("v2", _v2(["a"] * 4, [0.0] * 404), "batch of 101 rows exceeds"),
    ("v2", _v2(["a"] * 4, [0.0] * 4, outputs=[{"name": "reasons"}]), "unknown output 'reasons'"),
]


@pytest.mark.parametrize(("protocol", "body", "message"), BAD)
def test_bad_inputs_are_400_naming_field_and_row(
    served: Served, client: httpx.Client, protocol: str, body: Any, message: str
) -> None:
    path = (
        f"/v1/models/{served.detector}:predict"
        if protocol == "v1"
        else f"/v2/models/{served.detector}/infer"
    )
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_400(served: Served, client: httpx.Client, token: str) -> None:
    data = f"[1, 2, 3, 4, 5, {token}, 7, 8]"
    raw = f'{{"inputs": [{{"name": "f", "shape": [2, 4], "datatype": "FP64", "data": {data}}}]}}'
    response = client.post(
        f"/v2/models/{served.detector}/infer",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "row 1, feature 'velocity'" in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (
            b'{"instances": []}',
            {"content-type": "text/plain"},
            415,
            "content-type must be application/json",
        ),
        # No Content-Type is JSON (Open Inference Protocol clients send none): the body's own
        # problem is what is named.
        (b'{"instances": [', {}, 400, "not valid JSON"),
        (b'{"instances": [', {"content-type": "application/json"}, 400, "not valid JSON"),
    ],
)
def test_wrong_content_type_is_415_and_bad_json_400(
    served: Served,
    client: httpx.Client,
    content: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    for path in (f"/v1/models/{served.detector}:predict", f"/v2/models/{served.detector}/infer"):
        response = client.post(path, content=content, headers=headers)
        assert response.status_code == status, response.text
        assert message in response.json()["error"]


def test_unknown_model_is_404(client: httpx.Client) -> None:
    assert client.post("/v2/models/nobody/infer", json={"inputs": []}).status_code == 404


def test_new_champion_is_picked_up_without_restart(served: Served, client: httpx.Client) -> None:
    # Explicit reload (the repository extension's load) of the risk model.
    replacement = trained_models.risk_model("logistic")
    version = register(replacement, "risk", served.risk, served.tracking_uri)
    assert version == "2"
    reloaded = client.post(f"/v2/repository/models/{served.risk}/load")
    assert reloaded.status_code == 200 and reloaded.json()["version"] == "2"
    frame, _ = trained_models.risk_frame(n=5, seed=23)
    body = client.post(
        f"/v1/models/{served.risk}:predict", json={"instances": frame.to_dict(orient="records")}
    ).json()
    assert body["model_version"] == "2"
    np.testing.assert_allclose(
        [p["probability"] for p in body["predictions"]],
        replacement.risk_probability(frame),
        atol=1e-12,
        rtol=0,
    )

    # The periodic alias check (every 0.5 s here) picks up a new detector champion by itself.
    register(trained_models.detector("isolation"), "detector", served.detector, served.tracking_uri)
    deadline = time.monotonic() + 60
    while client.get(f"/v2/models/{served.detector}").json()["versions"] != ["2"]:
        assert time.monotonic() < deadline, log_tail(served.log, 30)
        time.sleep(0.2)
    frame, _ = trained_models.detector_frame(n=10, seed=24)
    body = client.post(
        f"/v1/models/{served.detector}:predict", json={"instances": frame.to_dict(orient="records")}
    ).json()
    assert body["model_version"] == "2"
    np.testing.assert_allclose(
        [p["score"] for p in body["predictions"]],
        trained_models.detector("isolation").anomaly_score(frame),
        atol=1e-12,
        rtol=0,
    )
