"""The predictor image serves the MLflow champions as the in-process predictor does: health,
metadata, V1 and V2 answers compared request for request; as its own non-root user, on
loopback when told to, writing nothing outside /tmp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.images.conftest import ImagePredictor
from tests.support import trained_models
from tests.support.predictor_process import Served

pytestmark = pytest.mark.integration


def _both(image: ImagePredictor, served: Served, method: str, path: str, **kw: Any) -> list[Any]:
    answers = []
    for url in (image.url, served.url):
        response = httpx.request(method, f"{url}{path}", timeout=60, **kw)
        assert response.status_code == 200, (url, response.text)
        answers.append(response.json())
    return answers


def test_health_and_metadata_match(image_predictor: ImagePredictor, served: Served) -> None:
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert httpx.get(f"{image_predictor.url}{path}", timeout=10).status_code == 200
    for name in (served.detector, served.risk):
        from_image, in_process = _both(image_predictor, served, "GET", f"/v2/models/{name}")
        assert from_image == in_process and from_image["inputs"]


def test_v1_predict_matches(image_predictor: ImagePredictor, served: Served) -> None:
    frame, _ = trained_models.detector_frame(n=25, seed=31)
    body = {"instances": frame.to_dict(orient="records")}
    from_image, in_process = _both(
        image_predictor, served, "POST", f"/v1/models/{served.detector}:predict", json=body
    )
    assert from_image["predictions"] == in_process["predictions"]
    assert len(from_image["predictions"]) == 25


def test_v2_infer_matches(image_predictor: ImagePredictor, served: Served) -> None:
    frame, _ = trained_models.risk_frame(n=8, seed=32)
    names = list(trained_models.risk_model("hgb").feature_names_)
    request = {
        "id": "image-1",
        "inputs": [
            {"name": n, "shape": [len(frame)], "datatype": "FP64", "data": frame[n].tolist()}
            for n in names
        ],
    }
    from_image, in_process = _both(
        image_predictor, served, "POST", f"/v2/models/{served.risk}/infer", json=request
    )
    assert from_image["outputs"] == in_process["outputs"] and from_image["id"] == "image-1"


def test_listens_on_loopback_only(image_predictor: ImagePredictor) -> None:
    port = int(image_predictor.url.rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = {line.split()[1] for line in listening if line.split()[3] == "0A"}  # 0A = LISTEN
    assert f"0100007F:{port:04X}" in local
    assert f"00000000:{port:04X}" not in local


def test_runs_as_non_root_writing_only_under_tmp(image_predictor: ImagePredictor) -> None:
    # Serving answered above: whatever start-up and the requests wrote went to /tmp (the
    # host folder mounted there) or nowhere. readOnlyRootFilesystem would refuse the rest.
    assert image_predictor.container.config()["User"] == "10001:10001"
    assert image_predictor.container.changed_files(ignore=("/tmp",)) == []
    owners = {path.stat().st_uid for path in image_predictor.tmp.rglob("*")}
    assert owners <= {10001}
