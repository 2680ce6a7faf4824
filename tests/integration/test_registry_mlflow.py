"""finrisk.registry against the real MLflow server: log, register, aliases, load, pyfunc."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest

from finrisk import registry
from finrisk.errors import FinriskError
from finrisk.registry.names import ARTIFACT_KEY
from finrisk.stack import Service
from tests.support import trained_models
from tests.support.malicious_pickle import plant

pytestmark = pytest.mark.integration


def _name(prefix: str) -> str:
    return f"test-{prefix}-{uuid.uuid4().hex[:8]}"


def test_log_register_alias_and_load(mlflow_server: Service) -> None:
    uri = mlflow_server.address
    model = trained_models.detector("supervised")
    name = _name("detector")
    run_id, model_uri = registry.log_model(
        model,
        "anomaly",
        tracking_uri=uri,
        experiment=_name("exp"),
        metrics={"pr_auc": 0.91},
        params={"max_iter": 25},
        tags={"pipeline_run_id": "run-42"},
        data_fingerprint="fp-123",
    )
    client = registry.registry_client(uri)
    run = client.get_run(run_id)
    assert run.data.tags[registry.TAG_DATA_FINGERPRINT] == "fp-123"
    assert run.data.tags[registry.TAG_PIPELINE_RUN_ID] == "run-42"
    assert run.data.tags[registry.TAG_KIND] == "detector"
    assert run.data.tags[registry.TAG_CODE_VERSION]
    assert run.data.metrics["pr_auc"] == 0.91
    assert run.data.metrics["compiled_parity_max_abs_diff"] <= 1e-9
    assert run.data.params["max_iter"] == "25"

    assert registry.get_version(name, registry.CHAMPION, tracking_uri=uri) is None
    version = registry.register(model_uri, name, {"metric.pr_auc": "0.91"}, tracking_uri=uri)
    assert version == "1"
    registry.set_alias(name, registry.CHALLENGER, version, tracking_uri=uri)
    assert registry.get_version(name, registry.CHAMPION, tracking_uri=uri) is None
    registry.set_alias(name, registry.CHAMPION, version, tracking_uri=uri)
    found = registry.get_version(name, registry.CHAMPION, tracking_uri=uri)
    assert found is not None and found.version == "1" and found.tags["metric.pr_auc"] == "0.91"

    loaded = registry.load(name, registry.CHAMPION, tracking_uri=uri, python_model=True)
    assert loaded.version_number == "1" and loaded.kind == "detector" and loaded.run_id == run_id
    assert loaded.metadata["threshold"] == model.threshold_
    assert loaded.metadata["provenance"]["data_fingerprint"] == "fp-123"
    frame, _ = trained_models.detector_frame(n=300, seed=11)
    np.testing.assert_array_equal(loaded.model.anomaly_score(frame), model.anomaly_score(frame))
    np.testing.assert_allclose(
        loaded.compiled.score(frame.loc[:, list(model.feature_names_)].to_numpy()),
        model.anomaly_score(frame),
        atol=1e-12,
        rtol=0,
    )
    assert registry.load_uri(f"models:/{name}/1", tracking_uri=uri).version_number == "1"

    registry.delete_alias(name, registry.CHAMPION, tracking_uri=uri)
    assert registry.get_version(name, registry.CHAMPION, tracking_uri=uri) is None
    with pytest.raises(FinriskError, match="no version with alias 'champion'"):
        registry.load(name, tracking_uri=uri)


def test_pyfunc_serves_scores_not_labels(mlflow_server: Service) -> None:
    uri = mlflow_server.address
    model = trained_models.risk_model("logistic")
    _, model_uri = registry.log_model(model, "risk", tracking_uri=uri, experiment=_name("exp"))
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    frame, _ = trained_models.risk_frame(n=50, seed=12)
    out = pyfunc.predict(frame.loc[:, list(model.feature_names_)])
    np.testing.assert_allclose(
        out["probability"], model.risk_probability(frame), atol=1e-12, rtol=0
    )
    assert list(out["band"]) == list(model.predict_band(frame))
    assert [i.name for i in pyfunc.metadata.get_input_schema().inputs] == list(model.feature_names_)


def test_missing_models_and_unreachable_servers(
    mlflow_server: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        registry.get_version(_name("nothing"), "champion", tracking_uri=mlflow_server.address)
        is None
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(FinriskError, match=r"cannot reach MLflow|failed"):
        registry.set_alias("x", "champion", "1", tracking_uri="http://127.0.0.1:9")


def test_a_changed_artifact_is_refused_and_serving_never_unpickles(
    mlflow_server: Service, tmp_path: Path
) -> None:
    """The registry vouches for the files (a SHA-256 in the version's tags, in MLflow's
    database); someone who can write to the artifact store cannot make the predictor run code."""
    uri = mlflow_server.address
    name = _name("tamper")
    _, model_uri = registry.log_model(
        trained_models.detector("supervised"), "detector", tracking_uri=uri, experiment=_name("x")
    )
    version = registry.register(model_uri, name, tracking_uri=uri)
    registry.set_alias(name, registry.CHAMPION, version, tracking_uri=uri)
    client = registry.registry_client(uri)
    tags = client.get_model_version(name, version).tags
    assert len(tags[registry.TAG_ARTIFACT_SHA256]) == 64
    served = registry.load(name, tracking_uri=uri, python_model=False)  # what the predictor does
    assert served.model is None and served.compiled is not None
    # The server's artifact store, on disk: replace the model's pickle with one that runs code.
    location = client.get_model_version_download_uri(name, version)
    store = Path(mlflow_server.dir) / "artifacts" / location.removeprefix("mlflow-artifacts:/")
    pickle_file = store / "artifacts" / ARTIFACT_KEY / "model.joblib"
    assert pickle_file.is_file()
    marker = tmp_path / "pwned"
    plant(pickle_file, marker)
    for python_model in (False, True):
        with pytest.raises(FinriskError, match="differ from those registered"):
            registry.load(name, tracking_uri=uri, python_model=python_model)
    assert not marker.exists()


def test_a_version_registered_before_digests_serves_as_data_and_its_pickle_stays_shut(
    mlflow_server: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade must not take the predictor down: a champion registered before digests were
    recorded still serves (data files only, with a warning); nothing unpickles it."""
    uri = mlflow_server.address
    name = _name("legacy")
    _, model_uri = registry.log_model(
        trained_models.detector("supervised"), "detector", tracking_uri=uri, experiment=_name("x")
    )
    version = registry.register(model_uri, name, tracking_uri=uri)
    registry.registry_client(uri).delete_model_version_tag(
        name, version, registry.TAG_ARTIFACT_SHA256
    )
    loaded = registry.load(name, version=version, tracking_uri=uri)
    assert loaded.model is None and loaded.compiled is not None
    assert "loading its data files unchecked" in caplog.text
    with pytest.raises(FinriskError, match="its pickle is not opened"):
        registry.load(name, version=version, tracking_uri=uri, python_model=True)
