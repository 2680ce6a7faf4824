"""Run the whole retraining DAG on this machine with `kfp.local`.

Every task runs as a subprocess of this Python environment (SubprocessRunner, no virtualenv,
no pip: the components import the installed finrisk), or as the caller's runner says (the
component image under buildah: finrisk.images.pipeline_runner), against the MLflow tracking server
named by MLFLOW_TRACKING_URI (default: the local stack's). Deploy runs as a dry run and
leaves the InferenceService manifest among the outputs. kfp-kubernetes settings (ConfigMaps,
Secrets) are ignored locally; the tasks inherit this process's environment instead.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finrisk.errors import FinriskError
from finrisk.gate import DETECTOR, RISK

if TYPE_CHECKING:
    from kfp.local import DockerRunner, SubprocessRunner

# Small enough to finish in a minute or two on a laptop, large enough for both label classes.
LOCAL_DEFAULTS: dict[str, Any] = {"synthetic_users": 400, "synthetic_days": 45}


@dataclass(frozen=True)
class LocalRunResult:
    seconds: float
    pipeline_root: Path
    champion: dict[str, str | None]
    challenger: dict[str, str | None]
    gate_decision: str | None
    gate_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "pipeline_root": str(self.pipeline_root)}


def pipeline_parameters() -> dict[str, inspect.Parameter]:
    """The pipeline's parameters (name -> signature parameter with default and type)."""
    from finrisk.pipelines.retraining import retraining_pipeline

    return dict(inspect.signature(retraining_pipeline.pipeline_func).parameters)


def check_arguments(arguments: Mapping[str, Any]) -> None:
    known = pipeline_parameters()
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        raise FinriskError(
            f"unknown pipeline parameter(s) {unknown}; the pipeline takes {sorted(known)}"
        )


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _version(found: Any) -> str | None:
    return None if found is None else str(found.version)


def _failure(root: Path, started_at: float, exc: RuntimeError) -> str:
    """What went wrong: the validation summary when the data was refused, else KFP's words."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    runs = [p for p in root.iterdir() if p.is_dir() and p.stat().st_mtime >= started_at - 1]
    for run in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)[:1]:
        report = run / "validate-data" / "report_json"
        if report.is_file():
            outcome = json.loads(report.read_text(encoding="utf-8"))
            if not outcome.get("passed", True):
                return (
                    f"the data failed validation: {outcome['summary']} "
                    f"(report: {run / 'validate-data' / 'report'})"
                )
    return f"the local pipeline run failed: {text} (task logs above)"


def run_local(
    arguments: Mapping[str, Any],
    *,
    pipeline_root: str | Path,
    tracking_uri: str,
    runner: SubprocessRunner | DockerRunner | None = None,
) -> LocalRunResult:
    """Run the DAG to the end; FinriskError when a task fails (its log is printed above).
    `runner`: kfp.local's, default a subprocess of this environment per task."""
    import kfp.local

    from finrisk.pipelines.retraining import retraining_pipeline

    check_arguments(arguments)
    args = {**LOCAL_DEFAULTS, **arguments, "deploy_dry_run": True}
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    started_at = time.time()
    with _environment({"MLFLOW_TRACKING_URI": tracking_uri}), warnings.catch_warnings():
        # The component image's name has no "python" in it: the runner warns per task.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        # Resources and display names matter on a cluster only; the runner says so per task.
        warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
        if runner is None:
            runner = kfp.local.SubprocessRunner(use_venv=False)
        kfp.local.init(runner=runner, pipeline_root=str(root))
        try:
            # Task logs go to stderr: stdout stays for the caller's own (JSON) output.
            with contextlib.redirect_stdout(sys.stderr):
                retraining_pipeline(**args)
        except RuntimeError as exc:
            raise FinriskError(_failure(root, started_at, exc)) from None
        seconds = time.perf_counter() - started
        names = {DETECTOR: args.get("detector_model_name"), RISK: args.get("risk_model_name")}
        defaults = pipeline_parameters()
        model_names = {
            kind: str(name or defaults[f"{kind}_model_name"].default)
            for kind, name in names.items()
        }
        from finrisk.registry.names import CHALLENGER, CHAMPION
        from finrisk.retraining.registration import (
            TAG_GATE_DECISION,
            TAG_GATE_REASON,
            alias_versions,
        )

        champion = alias_versions(CHAMPION, model_names=model_names)
        challenger = alias_versions(CHALLENGER, model_names=model_names)
    tags = dict(getattr(challenger[DETECTOR], "tags", None) or {})
    return LocalRunResult(
        seconds=seconds,
        pipeline_root=root,
        champion={kind: _version(v) for kind, v in champion.items()},
        challenger={kind: _version(v) for kind, v in challenger.items()},
        gate_decision=tags.get(TAG_GATE_DECISION),
        gate_reason=tags.get(TAG_GATE_REASON),
    )
