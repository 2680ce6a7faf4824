"""Cluster operations (upload, run, schedule) via kfp.Client against the v2beta1 contract stub."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from finrisk.cli import main
from finrisk.errors import FinriskError
from finrisk.pipelines import cluster
from finrisk.pipelines.compile import CompiledPipeline, compile_pipeline
from finrisk.pipelines.retraining import PIPELINE_NAME
from tests.support.kfp_contract_stub import KfpContractStub


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    return compile_pipeline(tmp_path_factory.mktemp("compiled"))


@pytest.fixture
def stub() -> Iterator[KfpContractStub]:
    with KfpContractStub() as server:
        yield server


def _client(stub: KfpContractStub) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # kfp.Client's version notice
        return cluster.connect(stub.host)


def _upload(stub: KfpContractStub, compiled: CompiledPipeline) -> cluster.Uploaded:
    return cluster.upload(
        _client(stub),
        str(compiled.ir_path),
        pipeline_name=PIPELINE_NAME,
        version_name=compiled.version_name,
    )


def test_upload_creates_pipeline_and_hash_named_version(
    stub: KfpContractStub, compiled: CompiledPipeline
) -> None:
    uploaded = _upload(stub, compiled)
    assert uploaded.created
    assert stub.state.pipelines[uploaded.pipeline_id]["display_name"] == PIPELINE_NAME
    version = stub.state.versions[uploaded.version_id]
    assert version["display_name"] == compiled.version_name
    assert version["pipeline_id"] == uploaded.pipeline_id
    assert stub.violations == []


def test_upload_twice_reuses_the_version(stub: KfpContractStub, compiled: CompiledPipeline) -> None:
    first = _upload(stub, compiled)
    second = _upload(stub, compiled)
    assert not second.created
    assert second.version_id == first.version_id
    assert len(stub.calls("POST", "/pipelines/upload_version")) == 1
    assert stub.violations == []


def test_run_starts_the_version_in_an_experiment(
    stub: KfpContractStub, compiled: CompiledPipeline
) -> None:
    client = _client(stub)
    uploaded = cluster.upload(
        client,
        str(compiled.ir_path),
        pipeline_name=PIPELINE_NAME,
        version_name=compiled.version_name,
    )
    run_id = cluster.run(
        client,
        uploaded,
        experiment="finrisk-tests",
        run_name="nightly",
        params={"synthetic_users": 500, "min_improvement": 0.01, "deploy_dry_run": True},
        service_account="finrisk-pipeline",
    )
    run = stub.state.runs[run_id]
    assert run["pipeline_version_reference"] == {
        "pipeline_id": uploaded.pipeline_id,
        "pipeline_version_id": uploaded.version_id,
    }
    assert run["runtime_config"]["parameters"]["synthetic_users"] == 500
    assert run["service_account"] == "finrisk-pipeline"
    experiment = stub.state.experiments[run["experiment_id"]]
    assert experiment["display_name"] == "finrisk-tests"
    # A second run finds the experiment instead of creating another.
    cluster.run(client, uploaded, experiment="finrisk-tests", run_name="again", params={})
    assert len(stub.state.experiments) == 1
    assert stub.violations == []


def test_schedule_creates_a_recurring_run_without_catch_up(
    stub: KfpContractStub, compiled: CompiledPipeline
) -> None:
    client = _client(stub)
    uploaded = cluster.upload(
        client,
        str(compiled.ir_path),
        pipeline_name=PIPELINE_NAME,
        version_name=compiled.version_name,
    )
    recurring_id = cluster.schedule(
        client,
        uploaded,
        experiment="finrisk-tests",
        job_name="nightly-retraining",
        cron="0 0 2 * * *",
        params={"data_source": "bigquery"},
        max_concurrency=1,
    )
    recurring = stub.state.recurring_runs[recurring_id]
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert recurring["max_concurrency"] == 1
    assert recurring["no_catchup"] is True
    assert recurring["mode"] == "ENABLE"
    assert recurring["pipeline_version_reference"]["pipeline_version_id"] == uploaded.version_id
    assert stub.violations == []


def test_five_field_cron_is_refused_before_any_request() -> None:
    with pytest.raises(FinriskError, match=re.escape("6 with seconds first, e.g. '0 0 2 * * *'")):
        cluster.validate_cron("0 2 * * *")
    with pytest.raises(FinriskError, match="not a 6-field cron"):
        cluster.validate_cron("0 0 2 * * * *")


def test_the_stub_rejects_an_undeclared_parameter(
    stub: KfpContractStub, compiled: CompiledPipeline
) -> None:
    # Proves the stub checks what it claims to: the server would refuse this run.
    client = _client(stub)
    uploaded = cluster.upload(
        client,
        str(compiled.ir_path),
        pipeline_name=PIPELINE_NAME,
        version_name=compiled.version_name,
    )
    with pytest.raises(FinriskError, match="not an input of the pipeline"):
        cluster.run(client, uploaded, experiment="e", run_name="r", params={"no_such": 1})
    with pytest.raises(FinriskError, match="is NUMBER_INTEGER, got str"):
        cluster.run(
            client, uploaded, experiment="e", run_name="r", params={"synthetic_users": "many"}
        )
    assert len(stub.violations) == 2


def test_cli_upload_run_schedule(
    stub: KfpContractStub, compiled: CompiledPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    host = ["--host", stub.host, "--package", str(compiled.ir_path)]
    assert main(["pipeline", "upload", *host, "--json"]) == 0
    uploaded = json.loads(capsys.readouterr().out)
    assert uploaded["version_name"] == compiled.version_name
    assert (
        main(
            [
                "pipeline",
                "run",
                *host,
                "--run-name",
                "cli-run",
                "-p",
                "seed=7",
                "-p",
                "deploy_dry_run=true",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "pipeline",
                "schedule",
                *host,
                "--cron",
                "0 30 1 * * *",
                "--max-concurrency",
                "2",
                "-p",
                "data_source=synthetic",
            ]
        )
        == 0
    )
    (run,) = stub.state.runs.values()
    assert run["runtime_config"]["parameters"] == {"seed": 7, "deploy_dry_run": True}
    (recurring,) = stub.state.recurring_runs.values()
    assert recurring["max_concurrency"] == 2
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 30 1 * * *"
    # A scheduled run asks the check-drift step whether to train; a run by hand trains.
    assert recurring["runtime_config"]["parameters"] == {
        "force_training": False,
        "data_source": "synthetic",
    }
    assert stub.violations == []


def test_the_monitor_starts_a_forced_run_on_the_cluster(
    stub: KfpContractStub, compiled: CompiledPipeline
) -> None:
    """What `finrisk monitor --host` starts when its policy says retrain."""
    import argparse

    from finrisk.pipelines.monitor import cluster_launcher, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["monitor", "--host", stub.host, "--package", str(compiled.ir_path)])
    started = cluster_launcher(args)({"seed": 3, "force_training": True})
    (run,) = stub.state.runs.values()
    assert run["runtime_config"]["parameters"] == {"seed": 3, "force_training": True}
    assert run["run_id"] in started and compiled.version_name in started
    assert stub.violations == []


def test_cli_needs_a_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    assert main(["pipeline", "upload", "--package", str(tmp_path / "x.yaml")]) == 2
    assert "--host" in capsys.readouterr().err
