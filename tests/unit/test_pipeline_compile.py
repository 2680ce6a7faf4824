"""The compiled pipeline: valid against the upstream CRDs, a parseable PipelineSpec, references
(not literals) for secrets and config, no pip at run time, a version name that follows the spec."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from finrisk.components import COMPONENT_IMAGE
from finrisk.deploy import cluster
from finrisk.pipelines.compile import (
    CompiledPipeline,
    compile_pipeline,
    load_manifests,
    spec_hash,
    version_name,
)
from finrisk.pipelines.retraining import PIPELINE_NAME
from tests.support.crds import validate_manifest

REPO = Path(__file__).resolve().parents[2]
MLFLOW_TASKS = ("exec-evaluate-models", "exec-register-challenger", "exec-promote-champion")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    return compile_pipeline(tmp_path_factory.mktemp("pipeline"), namespace="kubeflow")


@pytest.fixture(scope="module")
def manifests(compiled: CompiledPipeline) -> dict[str, dict[str, Any]]:
    docs = load_manifests(compiled.manifest_path)
    return {doc["kind"]: doc for doc in docs}


def _ir(compiled: CompiledPipeline) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(compiled.ir_path.read_text()) if d]


def test_manifests_validate_against_the_kfp_crds(manifests: dict[str, dict[str, Any]]) -> None:
    assert set(manifests) == {"Pipeline", "PipelineVersion"}
    for kind, doc in manifests.items():
        assert doc["apiVersion"] == "pipelines.kubeflow.org/v2beta1"
        assert validate_manifest(doc) == [], kind


def test_version_names_its_pipeline_and_carries_the_spec_hash(
    compiled: CompiledPipeline, manifests: dict[str, dict[str, Any]]
) -> None:
    pipeline, version = manifests["Pipeline"], manifests["PipelineVersion"]
    assert pipeline["metadata"] == {"name": PIPELINE_NAME, "namespace": "kubeflow"}
    assert version["spec"]["pipelineName"] == pipeline["metadata"]["name"]
    assert version["metadata"]["name"] == compiled.version_name
    assert compiled.version_name == f"{PIPELINE_NAME}-{spec_hash(compiled.ir_path)[:12]}"


def test_pipeline_spec_parses_as_the_kfp_proto(
    compiled: CompiledPipeline, manifests: dict[str, dict[str, Any]]
) -> None:
    for source in (manifests["PipelineVersion"]["spec"]["pipelineSpec"], _ir(compiled)[0]):
        spec = pipeline_spec_pb2.PipelineSpec()
        json_format.ParseDict(source, spec)
        assert spec.pipeline_info.name == PIPELINE_NAME
        assert "synthetic_users" in spec.root.input_definitions.parameters
    platform = pipeline_spec_pb2.PlatformSpec()
    json_format.ParseDict(manifests["PipelineVersion"]["spec"]["platformSpec"], platform)
    assert "kubernetes" in platform.platforms


def test_every_task_runs_the_component_image_without_pip(compiled: CompiledPipeline) -> None:
    executors = _ir(compiled)[0]["deploymentSpec"]["executors"]
    # the check, keep-champion twice (gate; skip training), shadow-challenger
    assert len(executors) == 15
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == COMPONENT_IMAGE, name
        command = " ".join(container["command"] + container.get("args", []))
        assert "pip install" not in command, name
        reports = ("exec-fail-run", "exec-keep-champion", "exec-keep-champion-2")
        if name not in (*reports, "exec-shadow-challenger"):
            assert "from finrisk." in command, f"{name} does not call the finrisk package"


def test_secrets_and_config_arrive_by_reference(compiled: CompiledPipeline) -> None:
    _, platform = _ir(compiled)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in MLFLOW_TASKS:
        config_maps = executors[name]["configMapAsEnv"]
        assert config_maps[0]["configMapName"] == cluster.CONFIG_MAP
        assert config_maps[0]["keyToEnv"] == [
            {"configMapKey": cluster.MLFLOW_URI_KEY, "envVar": "MLFLOW_TRACKING_URI"}
        ]
        secret = executors[name]["secretAsEnv"][0]
        assert secret["secretName"] == cluster.MLFLOW_SECRET and secret["optional"] is True
    ingest = executors["exec-ingest-data"]["secretAsEnv"][0]
    assert ingest["secretName"] == cluster.BIGQUERY_SECRET
    assert ingest["keyToEnv"] == [
        {"secretKey": cluster.BIGQUERY_KEY, "envVar": cluster.BIGQUERY_CREDENTIALS_ENV}
    ]
    # No tracking URI or credential is compiled in.
    text = compiled.ir_path.read_text() + compiled.manifest_path.read_text()
    assert not re.search(r"https?://(127\.0\.0\.1|localhost|mlflow)", text)


def _tasks(ir: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tasks: dict[str, dict[str, Any]] = {}
    for component in [ir["root"], *ir["components"].values()]:
        tasks.update((component.get("dag") or {}).get("tasks", {}))
    return tasks


def test_caching_is_off_where_results_must_be_fresh(compiled: CompiledPipeline) -> None:
    tasks = _tasks(_ir(compiled)[0])
    for name in (
        "ingest-data",
        "evaluate-models",
        "gate-decision",
        "register-challenger",
        "promote-champion",
        "deploy-challenger",
        "keep-champion",
    ):
        assert not tasks[name]["cachingOptions"].get("enableCache"), name
    assert tasks["build-features"]["cachingOptions"]["enableCache"] is True


def test_gate_branches_on_the_decision(compiled: CompiledPipeline) -> None:
    tasks = _tasks(_ir(compiled)[0])
    conditions = {
        name: task.get("triggerPolicy", {}).get("condition", "") for name, task in tasks.items()
    }
    action = "inputs.parameter_values['pipelinechannel--gate-decision-action']"
    branches = sorted(c for c in conditions.values() if "gate-decision" in c)
    assert branches == [
        f"!({action} == 'promote') && !({action} == 'shadow')",
        f"!({action} == 'promote') && {action} == 'shadow'",
        f"{action} == 'promote'",
    ]
    assert any("validate-data" in c and "passed" in c for c in conditions.values())


def test_recompiling_gives_the_same_version(compiled: CompiledPipeline, tmp_path: Path) -> None:
    again = compile_pipeline(tmp_path)
    assert again.version_name == compiled.version_name


def test_any_spec_change_gives_a_new_version(compiled: CompiledPipeline, tmp_path: Path) -> None:
    docs = _ir(compiled)
    docs[0]["root"]["inputDefinitions"]["parameters"]["min_improvement"]["defaultValue"] = 0.02
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump_all(docs))
    assert version_name(spec_hash(changed)) != compiled.version_name
    # Layout and key order are not changes.
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(yaml.safe_dump_all(_ir(compiled), sort_keys=False, indent=4))
    assert version_name(spec_hash(reordered)) == compiled.version_name


def test_cli_compile_with_another_image(compiled: CompiledPipeline, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "finrisk",
            "pipeline",
            "compile",
            "--out",
            str(tmp_path),
            "--image",
            "registry.example/finrisk-components:test",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(out.stdout)
    assert result["version"] != compiled.version_name
    ir = yaml.safe_load_all(Path(result["ir"]).read_text())
    images = {e["container"]["image"] for e in next(ir)["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example/finrisk-components:test"}


def test_make_compile_target() -> None:
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"^compile: setup.*\n\t(.+)$", makefile, re.MULTILINE)
    assert target is not None
    assert target.group(1) == "$(BIN)/finrisk pipeline compile --out build/pipeline"


def test_the_challenger_is_promoted_only_after_its_rollout_serves(
    compiled: CompiledPipeline,
) -> None:
    """Deploy before promote: a failed rollout is put back and no alias moves."""
    tasks = _tasks(_ir(compiled)[0])
    assert "deploy-challenger" in tasks["promote-champion"].get("dependentTasks", [])
    assert "promote-champion" not in tasks["deploy-challenger"].get("dependentTasks", [])


def _parents(ir: dict[str, Any]) -> dict[str, str]:
    """task name -> the name of the DAG (component) it sits in."""
    parents = {}
    for name, component in [("root", ir["root"]), *ir["components"].items()]:
        for task in (component.get("dag") or {}).get("tasks", {}):
            parents[task] = name
    return parents


def _enclosing_conditions(ir: dict[str, Any], task: str) -> list[str]:
    """The trigger conditions of every condition task enclosing `task`, innermost first."""
    tasks, parents = _tasks(ir), _parents(ir)
    # A condition task `condition-N` runs the component `comp-condition-N`.
    owner = {t["componentRef"]["name"]: n for n, t in tasks.items() if "componentRef" in t}
    found, where = [], parents[task]
    while where != "root":
        wrapper = owner[where]
        condition = tasks[wrapper].get("triggerPolicy", {}).get("condition")
        if condition:
            found.append(condition)
        where = parents[wrapper]
    return found


def test_training_runs_only_when_the_check_says_so(compiled: CompiledPipeline) -> None:
    """check drift first, at the root; every task from ingest to deploy under its `train`
    output being true; the skip branch under its negation."""
    ir = _ir(compiled)[0]
    tasks = _tasks(ir)
    assert _parents(ir)["check-drift"] == "root"
    assert not tasks["check-drift"]["cachingOptions"].get("enableCache")
    train = "inputs.parameter_values['pipelinechannel--check-drift-train'] == true"
    for name in (
        "ingest-data", "validate-data", "build-features", "train-detector", "train-risk-model",
        "evaluate-models", "gate-decision", "register-challenger", "deploy-challenger",
        "promote-champion", "keep-champion", "shadow-challenger", "fail-run",
    ):  # fmt: skip
        assert _enclosing_conditions(ir, name)[-1] == train, name
    assert _enclosing_conditions(ir, "keep-champion-2") == [f"!({train})"]
    assert tasks["keep-champion-2"]["taskInfo"]["name"] == "skip training"
    # The force parameter reaches the check, default true: a run someone starts trains.
    force = tasks["check-drift"]["inputs"]["parameters"]["force"]
    assert force["componentInputParameter"] == "force_training"
    assert ir["root"]["inputDefinitions"]["parameters"]["force_training"]["defaultValue"] is True


def test_the_check_reads_bigquery_by_reference(compiled: CompiledPipeline) -> None:
    _, platform = _ir(compiled)
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        "exec-check-drift"
    ]
    assert executor["secretAsEnv"][0]["secretName"] == cluster.BIGQUERY_SECRET
    assert executor["configMapAsEnv"][0]["keyToEnv"] == [
        {"configMapKey": cluster.BIGQUERY_ENDPOINT_KEY, "envVar": cluster.BIGQUERY_ENDPOINT_KEY},
        {
            "configMapKey": cluster.BIGQUERY_READ_ENDPOINT_KEY,
            "envVar": cluster.BIGQUERY_READ_ENDPOINT_KEY,
        },
    ]


def test_ingest_reads_both_bigquery_endpoints_by_reference(compiled: CompiledPipeline) -> None:
    """The SQL path's Read API endpoint reaches ingest from the ConfigMap, optional."""
    _, platform = _ir(compiled)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (config,) = executors["exec-ingest-data"]["configMapAsEnv"]
    assert config["configMapName"] == cluster.CONFIG_MAP and config["optional"] is True
    assert [item["configMapKey"] for item in config["keyToEnv"]] == [
        cluster.BIGQUERY_ENDPOINT_KEY,
        cluster.BIGQUERY_READ_ENDPOINT_KEY,
    ]


def test_ingest_takes_the_confirmed_labels_table(compiled: CompiledPipeline) -> None:
    """The labels loader's table reaches ingest (inside the training branch, by way of the
    branch's own parameter channel)."""
    ir = _ir(compiled)[0]
    ingest = _tasks(ir)["ingest-data"]["inputs"]["parameters"]
    for name in ("bigquery_labels_table", "label_maturity_days"):
        assert ingest[name]["componentInputParameter"].endswith(name), name
    defaults = ir["root"]["inputDefinitions"]["parameters"]
    assert defaults["bigquery_labels_table"]["defaultValue"] == ""
    assert defaults["label_maturity_days"]["defaultValue"] == 60.0


def test_the_detector_trains_with_the_label_delay_parameter(compiled: CompiledPipeline) -> None:
    """label_delay_days and detector_merchant_risk reach train_detector, by default the delay
    `finrisk train --labels` trains with, and merchant risk on."""
    from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS

    ir = _ir(compiled)[0]
    train = _tasks(ir)["train-detector"]["inputs"]["parameters"]
    assert train["label_delay_days"]["componentInputParameter"].endswith("label_delay_days")
    defaults = ir["root"]["inputDefinitions"]["parameters"]
    assert defaults["label_delay_days"]["defaultValue"] == FRAUD_LABEL_DELAY_DAYS
    assert train["merchant_risk"]["componentInputParameter"].endswith("detector_merchant_risk")
    assert defaults["detector_merchant_risk"]["defaultValue"] is True


def test_ingest_takes_the_bigquery_sql_path_parameters(compiled: CompiledPipeline) -> None:
    """The SQL path's switch, sample share and page size reach ingest, with its defaults."""
    ir = _ir(compiled)[0]
    ingest = _tasks(ir)["ingest-data"]["inputs"]["parameters"]
    names = (
        "bigquery_sql_features",
        "bigquery_sample_share",
        "bigquery_sample_rows",
        "bigquery_page_size",
    )
    for name in names:
        assert ingest[name]["componentInputParameter"].endswith(name), name
    defaults = ir["root"]["inputDefinitions"]["parameters"]
    assert [defaults[name]["defaultValue"] for name in names] == [True, 1.0, 0, 10_000]
