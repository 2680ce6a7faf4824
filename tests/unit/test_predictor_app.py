"""The predictor's HTTP app in-process (models built in memory, no MLflow): protocols, errors,
metadata, metrics and reload. The same routes are exercised over real HTTP in
tests/integration/test_predictor_http.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from finrisk.errors import FinriskError
from finrisk.registry import ModelRef
from finrisk.serving.predictor.app import build_app
from finrisk.serving.predictor.model import DetectorPredictor, FinriskModel, RiskPredictor
from tests.support import trained_models

DET, RISK = "det", "risk"


def _predictor(cls: type[FinriskModel], name: str, model: Any, **kwargs: Any) -> FinriskModel:
    predictor = cls(ModelRef(name, alias="champion"), **kwargs)
    predictor._install(trained_models.loaded(model, name))  # type: ignore[arg-type]
    predictor.ready = True
    return predictor


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[TestClient, FinriskModel, FinriskModel]]:
    det = _predictor(DetectorPredictor, DET, trained_models.detector("supervised"), max_rows=50)
    risk = _predictor(RiskPredictor, RISK, trained_models.risk_model("hgb"))
    with TestClient(build_app([det, risk])) as client:
        yield client, det, risk


@pytest.fixture(scope="module", params=["hgb", "logistic"])
def risk_served(request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, FinriskModel]]:
    """Both ways of explaining: re-scoring occluded rows (trees) and one pass (linear heads)."""
    risk = _predictor(RiskPredictor, RISK, trained_models.risk_model(request.param))
    assert risk.scorer.one_pass_reasons == (request.param == "logistic")
    with TestClient(build_app([risk])) as client:
        yield client, risk


def _frame(name: str) -> Any:
    if name == DET:
        frame, _ = trained_models.detector_frame(n=20, seed=3)
    else:
        frame, _ = trained_models.risk_frame(n=6, seed=4)
    return frame


def test_v1_detector_matches_the_model(served: Any) -> None:
    client, det, _ = served
    model = det.scorer.loaded.model
    frame = _frame(DET)
    response = client.post(
        f"/v1/models/{DET}:predict", json={"instances": frame.to_dict(orient="records")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == DET and body["model_version"] == "1"
    assert body["threshold"] == model.threshold_
    scores = np.array([p["score"] for p in body["predictions"]])
    np.testing.assert_allclose(scores, model.anomaly_score(frame), atol=1e-12, rtol=0)
    assert [p["is_anomaly"] for p in body["predictions"]] == [bool(v) for v in model.predict(frame)]


def test_v2_tensor_and_named_inputs_agree(served: Any) -> None:
    client, det, _ = served
    frame = _frame(DET).loc[:, list(det.scorer.feature_names)]
    tensor = {
        "inputs": [
            {
                "name": "features",
                "shape": list(frame.shape),
                "datatype": "FP64",
                "data": frame.to_numpy().ravel().tolist(),
            }
        ]
    }
    named = {
        "id": "req-7",
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()}
            for c in frame
        ],
    }
    a = client.post(f"/v2/models/{DET}/infer", json=tensor).json()
    b = client.post(f"/v2/models/{DET}/infer", json=named).json()
    assert isinstance(a["id"], str) and a["id"] and b["id"] == "req-7"
    assert a["model_name"] == DET and a["model_version"] == "1"
    assert a["parameters"] == {"threshold": det.scorer.threshold}
    assert [o["name"] for o in a["outputs"]] == ["score", "is_anomaly"]
    assert a["outputs"] == b["outputs"]
    score = a["outputs"][0]
    assert score["datatype"] == "FP64" and score["shape"] == [len(frame)]
    np.testing.assert_allclose(
        score["data"], det.scorer.loaded.model.anomaly_score(frame), atol=1e-12, rtol=0
    )
    assert a["outputs"][1]["datatype"] == "BOOL"


def test_v2_requested_outputs_only(served: Any) -> None:
    client, det, _ = served
    n = det.scorer.compiled.n_features
    body = {
        "inputs": [{"name": "x", "shape": [1, n], "datatype": "FP64", "data": [0.5] * n}],
        "outputs": [{"name": "is_anomaly"}],
    }
    out = client.post(f"/v2/models/{DET}/infer", json=body).json()["outputs"]
    assert [o["name"] for o in out] == ["is_anomaly"]


def test_risk_v1_gives_probability_band_and_reasons(risk_served: Any) -> None:
    client, risk = risk_served
    model = risk.scorer.loaded.model
    frame = _frame(RISK)
    body = client.post(
        f"/v1/models/{RISK}:predict", json={"instances": frame.to_dict(orient="records")}
    ).json()
    assert body["bands"] == {"low": 0.4, "high": 0.7}
    assessed = model.assess(frame)
    for prediction, (_, row) in zip(body["predictions"], assessed.iterrows(), strict=True):
        assert prediction["probability"] == pytest.approx(row["probability"], abs=1e-12)
        assert prediction["band"] == row["band"]
        assert [r["feature"] for r in prediction["reasons"]] == [
            r["feature"] for r in row["reasons"]
        ]
        for got, want in zip(prediction["reasons"], row["reasons"], strict=True):
            assert got["contribution"] == pytest.approx(want["contribution"], abs=1e-12)


def test_risk_v2_reasons_as_tensors_and_switched_off(risk_served: Any) -> None:
    client, risk = risk_served
    frame = _frame(RISK).loc[:, list(risk.scorer.feature_names)]
    # A row at the training medians: nothing moved its risk, so its reason slots stay empty.
    frame.loc[len(frame)] = risk.scorer.reference
    tensor = {
        "name": "features",
        "shape": list(frame.shape),
        "datatype": "FP64",
        "data": frame.to_numpy().tolist(),
    }
    out = {
        o["name"]: o
        for o in client.post(f"/v2/models/{RISK}/infer", json={"inputs": [tensor]}).json()[
            "outputs"
        ]
    }
    assert out["band"]["datatype"] == "BYTES" and set(out["band"]["data"]) <= {
        "LOW",
        "MEDIUM",
        "HIGH",
    }
    assert out["reasons"]["shape"] == [len(frame), 3] and out["reason_contributions"]["shape"] == [
        len(frame),
        3,
    ]
    explained = risk.scorer.loaded.model.explain(frame, 3)
    assert explained[-1] == []
    names = out["reasons"]["data"]
    contributions = out["reason_contributions"]["data"]
    for i, row in enumerate(explained):
        padding = 3 - len(row)
        assert names[3 * i : 3 * i + 3] == [r.feature for r in row] + [""] * padding
        assert contributions[3 * i : 3 * i + 3] == pytest.approx(
            [r.contribution for r in row] + [0.0] * padding, abs=1e-12
        )
    off = client.post(
        f"/v2/models/{RISK}/infer", json={"inputs": [tensor], "parameters": {"reasons": 0}}
    ).json()
    assert [o["name"] for o in off["outputs"]] == ["probability", "band"]
    assert off["outputs"][0]["data"] == out["probability"]["data"]


def test_reasons_from_explains_only_rows_of_that_band_or_higher(risk_served: Any) -> None:
    client, risk = risk_served
    frame, _ = trained_models.risk_frame(n=60, seed=5)
    frame = frame.loc[:, list(risk.scorer.feature_names)]
    tensor = {
        "name": "features",
        "shape": list(frame.shape),
        "datatype": "FP64",
        "data": frame.to_numpy().tolist(),
    }

    def infer(parameters: dict[str, Any]) -> dict[str, Any]:
        body = {"inputs": [tensor], "parameters": parameters}
        outputs = client.post(f"/v2/models/{RISK}/infer", json=body).json()["outputs"]
        return {o["name"]: o["data"] for o in outputs}

    every = infer({"reasons": 3})
    elevated = [band != "LOW" for band in every["band"]]
    assert 0 < sum(elevated) < len(elevated) and "HIGH" in every["band"]  # every case is met
    some = infer({"reasons": 3, "reasons_from": "MEDIUM"})
    assert some["probability"] == every["probability"]
    for i, explained in enumerate(elevated):
        row = slice(3 * i, 3 * i + 3)
        if explained:
            assert some["reasons"][row] == every["reasons"][row]
            assert some["reason_contributions"][row] == pytest.approx(
                every["reason_contributions"][row], abs=1e-12
            )
        else:
            assert some["reasons"][row] == ["", "", ""]
            assert some["reason_contributions"][row] == [0.0, 0.0, 0.0]
    assert infer({"reasons_from": "LOW"})["reasons"] == every["reasons"]

    v1 = client.post(
        f"/v1/models/{RISK}:predict",
        json={"instances": frame.to_dict(orient="records"), "parameters": {"reasons_from": "HIGH"}},
    ).json()["predictions"]
    assert [bool(p["reasons"]) for p in v1] == [
        band == "HIGH" and any(every["reasons"][3 * i : 3 * i + 3])
        for i, band in enumerate(every["band"])
    ]

    bad = client.post(
        f"/v2/models/{RISK}/infer",
        json={"inputs": [tensor], "parameters": {"reasons_from": "high"}},
    )
    assert bad.status_code == 400
    assert "parameter 'reasons_from' must be one of LOW, MEDIUM, HIGH" in bad.json()["error"]


def _binary_body(inputs: list[tuple[dict[str, Any], np.ndarray]]) -> tuple[bytes, dict[str, str]]:
    """A V2 body under the binary tensor data extension, and its headers."""
    header = orjson.dumps(
        {
            "inputs": [
                {**tensor, "parameters": {"binary_data_size": values.nbytes}}
                for tensor, values in inputs
            ]
        }
    )
    raw = b"".join(values.astype("<f8").tobytes() for _, values in inputs)
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }
    return header + raw, headers


def test_binary_tensor_data_scores_like_json(served: Any) -> None:
    client, det, risk = served
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]
    # Risk: one [rows, features] matrix.
    matrix = _frame(RISK).loc[:, list(risk.scorer.feature_names)].to_numpy()
    tensor = {"name": "features", "shape": list(matrix.shape), "datatype": "FP64"}
    as_json = client.post(
        f"/v2/models/{RISK}/infer", json={"inputs": [{**tensor, "data": matrix.tolist()}]}
    ).json()
    body, headers = _binary_body([(tensor, matrix)])
    as_binary = client.post(f"/v2/models/{RISK}/infer", content=body, headers=headers)
    assert as_binary.status_code == 200, as_binary.text
    assert as_binary.json()["outputs"] == as_json["outputs"]
    # Detector: one [rows] tensor per feature.
    frame = _frame(DET).loc[:, list(det.scorer.feature_names)]
    named = [
        ({"name": name, "shape": [len(frame)], "datatype": "FP64"}, frame[name].to_numpy())
        for name in frame.columns
    ]
    as_json = client.post(
        f"/v2/models/{DET}/infer",
        json={"inputs": [{**t, "data": v.tolist()} for t, v in named]},
    ).json()
    body, headers = _binary_body(named)
    as_binary = client.post(f"/v2/models/{DET}/infer", content=body, headers=headers).json()
    assert as_binary["outputs"] == as_json["outputs"]


def test_bad_binary_bodies_are_clear_400s(served: Any) -> None:
    client, _, risk = served
    n = len(risk.scorer.feature_names)
    tensor = {"name": "features", "shape": [2, n], "datatype": "FP64"}
    good = np.full((2, n), 0.5)
    body, headers = _binary_body([(tensor, good)])
    url = f"/v2/models/{RISK}/infer"

    def error(content: bytes, **changed: str) -> str:
        response = client.post(url, content=content, headers={**headers, **changed})
        assert response.status_code == 400, response.text
        return str(response.json()["error"])

    assert "inference-header-content-length must be" in error(
        body, **{"inference-header-content-length": "twelve"}
    )
    assert "runs past the body's end" in error(body[:-8])
    assert "8 bytes after the JSON part" in error(body + b"\0" * 8)
    # NaN is a missing value for a risk model's inputs (test_risk_gaps.py); infinity never is.
    inf = good.copy()
    inf[1, 2] = np.inf
    message = error(_binary_body([(tensor, inf)])[0])
    assert "row 1" in message and "infinite values are not allowed" in message
    both = orjson.dumps(
        {"inputs": [{**tensor, "data": good.tolist(), "parameters": {"binary_data_size": 8}}]}
    )
    assert "not both" in error(
        both + b"\0" * 8, **{"inference-header-content-length": str(len(both))}
    )
    assert "1 to" in error(body, **{"inference-header-content-length": str(len(body) + 1)})
    response = client.post(url, content=body, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 415  # octet-stream only with the extension's header
    assert "content-type must be application/json" in response.json()["error"]
    v1 = client.post(f"/v1/models/{RISK}:predict", content=body, headers=headers)
    assert v1.status_code == 400 and "V2 extension" in v1.json()["error"]


def test_metadata_on_both_protocols(served: Any) -> None:
    client, det, _ = served
    v2 = client.get(f"/v2/models/{DET}").json()
    assert v2["name"] == DET and v2["versions"] == ["1"]
    assert [i["name"] for i in v2["inputs"]] == list(det.scorer.feature_names)
    assert {i["datatype"] for i in v2["inputs"]} == {"FP64"}
    assert v2["outputs"] == [
        {"name": "score", "datatype": "FP64", "shape": [-1]},
        {"name": "is_anomaly", "datatype": "BOOL", "shape": [-1]},
    ]
    v1 = client.get(f"/v1/models/{DET}").json()
    assert v1["ready"] is True and v1["version"] == "1" and v1["kind"] == "detector"
    assert v1["feature_order"] == list(det.scorer.feature_names) and "threshold" in v1


def test_health_readiness_and_metrics(served: Any) -> None:
    client, _, _ = served
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/health/live").status_code == 200
    assert client.get(f"/v2/models/{DET}/ready").json() == {"name": DET, "ready": True}
    assert client.get("/v2/models").json() == {"models": [DET, RISK]}
    client.post(f"/v1/models/{DET}:predict", json={"instances": []})
    text = client.get("/metrics").text
    assert f'finrisk_predictor_requests_total{{model="{DET}",protocol="v1",status="400"}}' in text
    assert f'finrisk_predictor_model_version{{model="{DET}"}}' in text
    assert "request_predict_seconds" in text  # kserve's own stage histograms


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "message"),
    [
        (
            f"/v1/models/{DET}:predict",
            {"content": b'{"instances": []}', "headers": {"content-type": "text/plain"}},
            415,
            "content-type",
        ),
        (
            f"/v2/models/{DET}/infer",
            {"content": b"{", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        (
            f"/v2/models/{DET}/infer",
            {
                "json": {
                    "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]
                }
            },
            400,
            "this model takes [rows,",
        ),
        (
            f"/v2/models/{DET}/infer",
            {
                "json": {
                    "inputs": [
                        {"name": "x", "shape": [51, 4], "datatype": "FP64", "data": [1] * 204}
                    ]
                }
            },
            400,
            "exceeds the limit of 50",
        ),
        (
            f"/v2/models/{RISK}/infer",
            {"json": {"inputs": [], "outputs": [{"name": "nope"}]}},
            400,
            "'inputs' must be",
        ),
        (
            f"/v2/models/{DET}/versions/9/infer",
            {"json": {"inputs": []}},
            404,
            "serves version 1, not 9",
        ),
        ("/v2/models/ghost/infer", {"json": {"inputs": []}}, 404, "not served here"),
        ("/v1/models/ghost:predict", {"json": {"instances": []}}, 404, "not served here"),
    ],
)
def test_bad_requests(
    served: Any, path: str, kwargs: dict[str, Any], status: int, message: str
) -> None:
    client, _, _ = served
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_body_naming_another_model_or_version_is_refused(served: Any) -> None:
    client, det, _ = served
    n = det.scorer.compiled.n_features
    tensor = {"name": "x", "shape": [1, n], "datatype": "FP64", "data": [0.0] * n}
    ok = client.post(f"/v2/models/{DET}/infer", json={"inputs": [tensor], "model_name": DET})
    assert ok.status_code == 200
    other = client.post(f"/v2/models/{DET}/infer", json={"inputs": [tensor], "model_name": RISK})
    assert other.status_code == 400 and "the body names model 'risk'" in other.json()["error"]
    stale = client.post(f"/v2/models/{DET}/infer", json={"inputs": [tensor], "model_version": "7"})
    assert stale.status_code == 400 and "serving 1" in stale.json()["error"]


def test_unknown_output_names_are_refused(served: Any) -> None:
    client, det, _ = served
    n = det.scorer.compiled.n_features
    body = {
        "inputs": [{"name": "x", "shape": [1, n], "datatype": "FP64", "data": [0.0] * n}],
        "outputs": [{"name": "probability"}],
    }
    response = client.post(f"/v2/models/{DET}/infer", json=body)
    assert (
        response.status_code == 400 and "unknown output 'probability'" in response.json()["error"]
    )


def test_reload_swaps_the_version_and_survives_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    det = _predictor(DetectorPredictor, DET, trained_models.detector("supervised"))
    second = trained_models.loaded(trained_models.detector("isolation"), DET, version="2")
    target = {"version": "1"}
    monkeypatch.setattr(det, "_target_version", lambda: target["version"])
    monkeypatch.setattr(det, "_fetch", lambda version: second)
    frame = _frame(DET)
    with TestClient(build_app([det])) as client:
        unchanged = client.post(f"/v2/repository/models/{DET}/load").json()
        assert unchanged == {
            "load": True,
            "name": DET,
            "version": "1",
            "previous_version": "1",
            "changed": False,
        }
        target["version"] = "2"
        changed = client.post(f"/v2/repository/models/{DET}/load").json()
        assert changed["changed"] is True and changed["version"] == "2"
        body = client.post(
            f"/v1/models/{DET}:predict", json={"instances": frame.to_dict(orient="records")}
        ).json()
        assert body["model_version"] == "2"
        np.testing.assert_allclose(
            [p["score"] for p in body["predictions"]],
            second.model.anomaly_score(frame),
            atol=1e-12,
            rtol=0,
        )

        def broken(version: str) -> Any:
            raise FinriskError("registry unreachable")

        target["version"] = "3"
        monkeypatch.setattr(det, "_fetch", broken)
        failed = client.post(f"/v2/repository/models/{DET}/load")
        assert (
            failed.status_code == 503
            and "still serving the previous version" in failed.json()["error"]
        )
        assert client.get(f"/v1/models/{DET}").json()["version"] == "2"


def test_alias_watcher_picks_up_a_new_champion(monkeypatch: pytest.MonkeyPatch) -> None:
    det = _predictor(DetectorPredictor, DET, trained_models.detector("supervised"))
    second = trained_models.loaded(trained_models.detector("isolation"), DET, version="2")
    monkeypatch.setattr(det, "_target_version", lambda: "2")
    monkeypatch.setattr(det, "_fetch", lambda version: second)
    with TestClient(build_app([det], reload_interval=0.05)) as client:
        deadline = time.monotonic() + 20
        while client.get(f"/v2/models/{DET}").json()["versions"] != ["2"]:
            assert time.monotonic() < deadline, "the watcher never reloaded"
            time.sleep(0.05)


def test_profile_of_the_served_version(served: Any) -> None:
    """The bridge reads the reference profile of the version that answered it from here."""
    from finrisk.monitoring.profile import reference_profile

    client, _, _ = served
    frame, _ = trained_models.detector_frame()
    model = trained_models.detector("supervised")
    profile = reference_profile(frame, model.anomaly_score(frame), threshold=model.threshold_)
    det = _predictor(DetectorPredictor, DET, model)
    det._install(trained_models.loaded(model, DET, version="7", profile=profile))  # type: ignore[arg-type]
    with TestClient(build_app([det])) as profiled:
        answer = profiled.get(f"/v2/models/{DET}/versions/7/profile")
        assert answer.status_code == 200
        assert answer.json() == {"name": DET, "version": "7", "profile": profile}
        other = profiled.get(f"/v2/models/{DET}/versions/6/profile")
        assert other.status_code == 404 and "serves version 7, not 6" in other.json()["error"]
    # A version registered before profiles existed: a clear 404, not a 5xx.
    none = client.get(f"/v2/models/{DET}/versions/1/profile")
    assert none.status_code == 404 and "no reference profile" in none.json()["error"]
    missing = client.get("/v2/models/nope/versions/1/profile")
    assert missing.status_code == 404 and "not served here" in missing.json()["error"]
