"""The risk model's `recommendations` output over real HTTP (finrisk serve, real MLflow): asked
for with the `recommendations` parameter, one JSON array per MEDIUM or HIGH row, each
recommendation's changed features re-scored by the same predictor to the promised probability
and a lower band; hostile parameter values are 400s naming the parameter."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from finrisk.models.bands import BAND_NAMES, LOW
from tests.support import trained_models
from tests.support.predictor_process import Served

pytestmark = pytest.mark.integration

RANK = {name: i for i, name in enumerate(BAND_NAMES)}


def _infer(
    client: httpx.Client, served: Served, rows: np.ndarray, **extra: Any
) -> tuple[dict[str, Any], httpx.Response]:
    request = {
        "inputs": [
            {
                "name": "features",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ],
        **extra,
    }
    response = client.post(f"/v2/models/{served.risk}/infer", json=request)
    body = response.json()
    return {o["name"]: o for o in body.get("outputs", [])}, response


def _rows(client: httpx.Client, served: Served) -> np.ndarray:
    names = [i["name"] for i in client.get(f"/v2/models/{served.risk}").json()["inputs"]]
    frame, _ = trained_models.risk_frame(n=60, seed=31)
    return frame[names].to_numpy(dtype=np.float64)


def test_recommendations_rescore_to_their_promise(served: Served, client: httpx.Client) -> None:
    rows = _rows(client, served)
    names = [i["name"] for i in client.get(f"/v2/models/{served.risk}").json()["inputs"]]
    outputs, response = _infer(
        client, served, rows, parameters={"recommendations": 3, "reasons": 0}
    )
    assert response.status_code == 200, response.text
    version = response.json()["model_version"]
    recs = outputs["recommendations"]
    assert recs["datatype"] == "BYTES" and recs["shape"] == [len(rows)]
    bands = outputs["band"]["data"]
    changed_rows, promises = [], []
    for row, band, text in zip(rows, bands, recs["data"], strict=True):
        if band == LOW:
            assert text == ""  # not searched
            continue
        found = json.loads(text)
        assert isinstance(found, list) and len(found) <= 3
        for rec in found:
            assert set(rec) == {"actions", "changes", "cost", "probability", "band"}
            assert RANK[rec["band"]] < RANK[band]
            changed = row.copy()
            for change in rec["changes"]:
                j = names.index(change["feature"])
                assert changed[j] == change["from"]
                changed[j] = change["to"]
            changed_rows.append(changed)
            promises.append(rec)
    assert promises, "no elevated row got a recommendation"
    rescored, again = _infer(client, served, np.array(changed_rows), parameters={"reasons": 0})
    assert again.json()["model_version"] == version
    np.testing.assert_allclose(
        rescored["probability"]["data"], [p["probability"] for p in promises], atol=1e-12, rtol=0
    )
    assert rescored["band"]["data"] == [p["band"] for p in promises]


def test_recommendations_are_computed_only_when_asked(served: Served, client: httpx.Client) -> None:
    rows = _rows(client, served)
    outputs, response = _infer(client, served, rows)
    assert response.status_code == 200
    assert "recommendations" not in outputs
    outputs, _ = _infer(
        client,
        served,
        rows,
        parameters={"recommendations": 1},
        outputs=[{"name": "recommendations"}],
    )
    assert list(outputs) == ["recommendations"]


@pytest.mark.parametrize(
    ("parameters", "outputs", "message"),
    [
        (
            {"recommendations": -1},
            None,
            "parameter 'recommendations' must be an integer from 0 to 5",
        ),
        ({"recommendations": 6}, None, "from 0 to 5, got 6"),
        ({"recommendations": True}, None, "from 0 to 5, got True"),
        ({"recommendations": 2.0}, None, "from 0 to 5, got 2.0"),
        ({"recommendations": "3"}, None, "from 0 to 5, got '3'"),
        ({"recommendations": 10**30}, None, "parameter 'recommendations' must be an integer"),
        ({}, [{"name": "recommendations"}], "outputs ask for 'recommendations' but parameter"),
    ],
)
def test_hostile_recommendations_parameter_is_400(
    served: Served,
    client: httpx.Client,
    parameters: dict[str, Any],
    outputs: list[dict[str, str]] | None,
    message: str,
) -> None:
    extra: dict[str, Any] = {"parameters": parameters}
    if outputs is not None:
        extra["outputs"] = outputs
    _, response = _infer(client, served, _rows(client, served)[:2], **extra)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_recommendations_on_the_detector_is_400(served: Served, client: httpx.Client) -> None:
    request = {
        "inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [0.0] * 4}],
        "parameters": {"recommendations": 1},
    }
    response = client.post(f"/v2/models/{served.detector}/infer", json=request)
    assert response.status_code == 400
    assert "parameter 'recommendations' is for risk models" in response.json()["error"]


def test_v1_predictions_carry_recommendations_when_asked(
    served: Served, client: httpx.Client
) -> None:
    rows = _rows(client, served)
    names = [i["name"] for i in client.get(f"/v2/models/{served.risk}").json()["inputs"]]
    instances = [dict(zip(names, row.tolist(), strict=True)) for row in rows]
    response = client.post(
        f"/v1/models/{served.risk}:predict",
        json={"instances": instances, "parameters": {"recommendations": 2, "reasons": 0}},
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    v2, _ = _infer(client, served, rows, parameters={"recommendations": 2, "reasons": 0})
    for prediction, text in zip(predictions, v2["recommendations"]["data"], strict=True):
        if prediction["band"] == LOW:
            assert prediction["recommendations"] is None and text == ""
        else:
            assert prediction["recommendations"] == json.loads(text)
    plain = client.post(f"/v1/models/{served.risk}:predict", json={"instances": instances[:2]})
    assert all("recommendations" not in p for p in plain.json()["predictions"])
