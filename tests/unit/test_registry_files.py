"""Registry pieces that need no MLflow server: names, references, files, metadata, kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finrisk.compiled import DETECTOR, RISK, compile_model, require_parity
from finrisk.errors import FinriskError
from finrisk.registry import ModelRef, canonical_kind, log_model, parse_model_uri, pip_requirements
from finrisk.registry.artifacts import read_files, write_files
from finrisk.registry.metadata import model_metadata
from tests.support import trained_models


def test_kinds_accept_their_usual_spellings() -> None:
    assert canonical_kind("anomaly") == DETECTOR
    assert canonical_kind(" Detector ") == DETECTOR
    assert canonical_kind("risk") == RISK
    with pytest.raises(FinriskError, match="unknown model kind 'fraudster'"):
        canonical_kind("fraudster")


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        (
            "models:/finrisk-anomaly-detector@champion",
            ModelRef("finrisk-anomaly-detector", alias="champion"),
        ),
        ("models:/risk/12", ModelRef("risk", version="12")),
    ],
)
def test_model_references(uri: str, ref: ModelRef) -> None:
    assert parse_model_uri(uri) == ref
    assert ref.uri == uri


@pytest.mark.parametrize(
    "uri", ["runs:/abc/model", "models:/x", "models:/x/latest", "models:/a@b/1"]
)
def test_bad_model_references_are_refused(uri: str) -> None:
    with pytest.raises(FinriskError, match="models:/<name>@<alias>"):
        parse_model_uri(uri)


def test_detector_metadata_carries_threshold_and_feature_order() -> None:
    model = trained_models.detector("supervised")
    compiled = compile_model(model)
    parity = require_parity(model, compiled, probe=100)
    meta = model_metadata(
        model, DETECTOR, compiled, parity, provenance={"code_version": "x"}, metrics={"auc": 0.9}
    )
    assert meta["feature_names"] == list(model.feature_names_)
    assert meta["threshold"] == model.threshold_
    assert meta["parity"]["ok"] and meta["metrics"] == {"auc": 0.9}
    assert meta["provenance"] == {"code_version": "x"}


def test_risk_metadata_carries_bands_and_reference() -> None:
    model = trained_models.risk_model("logistic")
    compiled = compile_model(model)
    meta = model_metadata(
        model, RISK, compiled, require_parity(model, compiled), provenance={}, metrics={}
    )
    assert meta["bands"] == {"low": 0.4, "high": 0.7}
    np.testing.assert_array_equal(meta["reference"], model.reference_)


def test_files_round_trip(tmp_path: Path) -> None:
    model = trained_models.risk_model("hgb")
    compiled = compile_model(model)
    meta = model_metadata(
        model, RISK, compiled, require_parity(model, compiled), provenance={}, metrics={}
    )
    write_files(tmp_path / "m", model, compiled, meta)
    files = read_files(tmp_path / "m")
    frame, _ = trained_models.risk_frame(seed=9)
    np.testing.assert_array_equal(
        files.model.risk_probability(frame), model.risk_probability(frame)
    )
    np.testing.assert_array_equal(
        files.compiled.score(frame.loc[:, list(model.feature_names_)].to_numpy()),
        compiled.score(frame.loc[:, list(model.feature_names_)].to_numpy()),
    )
    assert files.metadata == meta


def test_reading_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(FinriskError, match=r"metadata\.json missing"):
        read_files(tmp_path)


def test_log_model_refuses_a_kind_mismatch_before_touching_mlflow() -> None:
    with pytest.raises(FinriskError, match="told kind 'risk' but got a detector"):
        log_model(trained_models.detector("supervised"), "risk", tracking_uri="http://127.0.0.1:9")


def test_pip_requirements_are_pinned() -> None:
    reqs = pip_requirements()
    assert all("==" in r for r in reqs)
    assert {r.split("==")[0] for r in reqs} >= {"mlflow", "scikit-learn", "onnxruntime"}


def test_serving_reads_data_only_and_a_changed_folder_is_refused(tmp_path: Path) -> None:
    """The predictor's load never opens the pickle; and no file is read at all unless the
    folder matches the digest recorded at registration."""
    from finrisk.registry.artifacts import COMPILED_DIR, MODEL_FILE, folder_digest
    from tests.support.malicious_pickle import plant

    model = trained_models.detector("supervised")
    compiled = compile_model(model)
    parity = require_parity(model, compiled, probe=100)
    folder = write_files(
        tmp_path / "m",
        model,
        compiled,
        model_metadata(model, DETECTOR, compiled, parity, provenance={}, metrics={}),
    )
    marker = tmp_path / "pwned"
    plant(folder / MODEL_FILE, marker)
    digest = folder_digest(folder)  # the pickle registered as is: still never opened
    files = read_files(folder, python_model=False, digest=digest)
    assert files.model is None and files.compiled.feature_names == tuple(model.feature_names_)
    assert not marker.exists()
    (folder / COMPILED_DIR / "compiled.json").write_text(
        (folder / COMPILED_DIR / "compiled.json").read_text().replace("0", "1", 1)
    )
    with pytest.raises(FinriskError, match="differ from those registered"):
        read_files(folder, python_model=True, digest=digest)
    assert not marker.exists()  # refused before the pickle, too


def test_a_models_profile_is_written_beside_it_and_read_back_as_data(tmp_path: Path) -> None:
    model = trained_models.detector("supervised")
    model.profile_ = {"version": 1, "features": {"amount": {"edges": [1.0], "shares": [0.5, 0.5]}}}
    compiled = compile_model(model)
    meta = model_metadata(
        model,
        DETECTOR,
        compiled,
        require_parity(model, compiled, probe=50),
        provenance={},
        metrics={},
    )
    folder = write_files(tmp_path / "m", model, compiled, meta)
    assert read_files(folder, python_model=False).profile == model.profile_
    del model.profile_  # a model trained before profiles: none written, None read
    plain = write_files(tmp_path / "plain", model, compiled, meta)
    assert read_files(plain, python_model=False).profile is None
