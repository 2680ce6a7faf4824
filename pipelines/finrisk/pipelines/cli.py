"""`finrisk pipeline compile|run|upload|schedule`: the Kubeflow retraining pipeline.

    finrisk pipeline compile --out build/pipeline
    finrisk pipeline run --local [-p min_improvement=0.01 ...]
    finrisk pipeline upload --host https://kfp.example.com
    finrisk pipeline run --host https://kfp.example.com [-p data_source=bigquery ...]
    finrisk pipeline schedule --host https://kfp.example.com --cron "0 0 2 * * *"

Pipeline parameters are given as `-p name=value` (repeatable), typed by the pipeline's
signature; `finrisk pipeline params` lists them with their defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finrisk.errors import FinriskError

IMAGE_ENV = "FINRISK_COMPONENT_IMAGE"
HOST_ENV = "KF_PIPELINES_ENDPOINT"  # the variable kfp.Client itself reads


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pipeline", help="compile, run and schedule the Kubeflow retraining pipeline"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    text = "compile to IR YAML and Kubernetes Pipeline/PipelineVersion manifests"
    sub = actions.add_parser("compile", help=text, description=text)
    sub.add_argument("--out", type=Path, required=True, help="output folder (created)")
    sub.add_argument("--namespace", help="namespace written into the Kubernetes manifests")
    _image_flag(sub)
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(handler=_compile)

    text = "list the pipeline's parameters and their defaults"
    sub = actions.add_parser("params", help=text, description=text)
    sub.set_defaults(handler=_params)

    text = "run the pipeline: --local with kfp.local, else on the cluster at --host"
    sub = actions.add_parser("run", help=text, description=text)
    sub.add_argument("--local", action="store_true", help="run here against local MLflow")
    sub.add_argument(
        "--pipeline-root",
        type=Path,
        default=Path("local_outputs"),
        help="local runs: where task outputs go (default ./local_outputs)",
    )
    sub.add_argument(
        "--tracking-uri",
        help="local runs: MLflow tracking URI (default MLFLOW_TRACKING_URI, else the stack's)",
    )
    cluster_flags(sub)
    sub.add_argument(
        "--run-name", help="cluster runs: run name (default finrisk-retraining-<time>)"
    )
    param_flag(sub)
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(handler=_run)

    text = "upload the pipeline and this version (named by its spec hash) to the cluster"
    sub = actions.add_parser("upload", help=text, description=text)
    cluster_flags(sub)
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(handler=_upload)

    text = "create a recurring run on the cluster (no catch-up, bounded concurrency)"
    sub = actions.add_parser("schedule", help=text, description=text)
    cluster_flags(sub)
    sub.add_argument(
        "--cron",
        required=True,
        help="6-field cron, seconds first: '0 0 2 * * *' runs at 02:00 every day",
    )
    sub.add_argument(
        "--max-concurrency", type=int, default=1, help="runs allowed at once (default 1)"
    )
    sub.add_argument("--job-name", default="finrisk-retraining-schedule", help="recurring run name")
    param_flag(sub)
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(handler=_schedule)


def _image_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image",
        help=f"component image (default ${IMAGE_ENV}, else ghcr.io/finrisk/finrisk-components:"
        "<version>)",
    )


def param_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter (repeatable); see `finrisk pipeline params`",
    )


def cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help=f"KFP API endpoint (default ${HOST_ENV})")
    parser.add_argument("--namespace", help="KFP namespace (multi-user clusters)")
    parser.add_argument(
        "--token", help="bearer token for the KFP API (e.g. `kubectl create token`)"
    )
    parser.add_argument("--experiment", default="finrisk-retraining", help="experiment name")
    parser.add_argument(
        "--service-account",
        default=None,
        help="service account the runs use (manifests/base: finrisk-pipeline)",
    )
    parser.add_argument(
        "--package",
        type=Path,
        help="compiled IR YAML to use (default: compile now)",
    )
    _image_flag(parser)


def set_image(args: argparse.Namespace) -> None:
    # The components read the image when they are imported, which happens below this call.
    if getattr(args, "image", None):
        os.environ[IMAGE_ENV] = args.image


def _coerce(name: str, text: str, annotation: Any) -> Any:
    try:
        if annotation is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        if annotation is int:
            return int(text)
        if annotation is float:
            return float(text)
    except ValueError:
        kind = getattr(annotation, "__name__", str(annotation))
        raise FinriskError(f"-p {name}={text!r}: {name} takes a {kind}") from None
    return text


def parse_params(items: list[str]) -> dict[str, Any]:
    """`name=value` strings -> typed pipeline arguments; unknown names are errors."""
    from finrisk.pipelines.local import pipeline_parameters

    known = pipeline_parameters()
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise FinriskError(f"-p {item!r}: expected NAME=VALUE")
        if name not in known:
            raise FinriskError(
                f"-p {name}: not a pipeline parameter; the pipeline takes {sorted(known)}"
            )
        out[name] = _coerce(name, value, known[name].annotation)
    return out


def _print(args: argparse.Namespace, data: dict[str, Any], lines: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print("\n".join(lines))


def _compile(args: argparse.Namespace) -> int:
    set_image(args)
    from finrisk.pipelines.compile import compile_pipeline

    compiled = compile_pipeline(args.out, namespace=args.namespace)
    _print(
        args,
        compiled.to_dict(),
        [
            f"IR YAML (UI upload, kfp.Client):  {compiled.ir_path}",
            f"Kubernetes manifests (kubectl):   {compiled.manifest_path}",
            f"pipeline {compiled.pipeline_name}, version {compiled.version_name}",
        ],
    )
    return 0


def _params(args: argparse.Namespace) -> int:
    from finrisk.pipelines.local import pipeline_parameters

    for name, parameter in pipeline_parameters().items():
        kind = getattr(parameter.annotation, "__name__", str(parameter.annotation))
        print(f"{name:<24} {kind:<6} default {parameter.default!r}")
    return 0


def _host(args: argparse.Namespace) -> str:
    host = args.host or os.environ.get(HOST_ENV)
    if not host:
        raise FinriskError(f"give --host (the KFP API endpoint) or set {HOST_ENV}")
    return str(host)


def _uploaded(args: argparse.Namespace, client: Any) -> Any:
    from finrisk.pipelines import cluster

    if args.package is not None and not args.package.is_file():
        raise FinriskError(f"--package {args.package} is not a file")
    return cluster.upload_current(client, args.package)


def client_for(args: argparse.Namespace) -> Any:
    from finrisk.pipelines import cluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # kfp.Client's API-version notice
        return cluster.connect(_host(args), namespace=args.namespace, token=args.token)


@contextlib.contextmanager
def kfp_prints_to_stderr() -> Iterator[None]:
    # kfp.Client prints UI links on stdout; keep stdout for our own (JSON) output.
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _upload(args: argparse.Namespace) -> int:
    set_image(args)
    with kfp_prints_to_stderr():
        uploaded = _uploaded(args, client_for(args))
    state = "uploaded" if uploaded.created else "already there"
    _print(
        args,
        uploaded.to_dict(),
        [
            f"pipeline id {uploaded.pipeline_id}",
            f"version {uploaded.version_name} ({state}), id {uploaded.version_id}",
        ],
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    if args.local:
        return _run_local(args, params)
    set_image(args)
    from datetime import UTC, datetime

    from finrisk.pipelines import cluster

    name = args.run_name or f"finrisk-retraining-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    with kfp_prints_to_stderr():
        client = client_for(args)
        uploaded = _uploaded(args, client)
        run_id = cluster.run(
            client,
            uploaded,
            experiment=args.experiment,
            run_name=name,
            params=params,
            namespace=args.namespace,
            service_account=args.service_account,
        )
    _print(
        args,
        {"run_id": run_id, "run_name": name, **uploaded.to_dict()},
        [f"run {name} started: id {run_id} (version {uploaded.version_name})"],
    )
    return 0


def _run_local(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from finrisk.pipelines.local import run_local
    from finrisk.retraining.registration import tracking_uri

    uri = args.tracking_uri or tracking_uri()
    result = run_local(params, pipeline_root=args.pipeline_root, tracking_uri=uri)
    _print(
        args,
        result.to_dict(),
        [
            f"local run finished in {result.seconds:.1f} s; outputs under {result.pipeline_root}",
            f"gate: {result.gate_reason}",
            f"challenger versions: {result.challenger}",
            f"champion versions:   {result.champion}",
        ],
    )
    return 0


def _schedule(args: argparse.Namespace) -> int:
    set_image(args)
    from finrisk.pipelines import cluster

    # A scheduled run trains only when the check-drift step's policy says so (unless -p says
    # otherwise); a run someone starts by hand trains (the parameter's default).
    params = {"force_training": False, **parse_params(args.param)}
    cron = cluster.validate_cron(args.cron)
    with kfp_prints_to_stderr():
        client = client_for(args)
        uploaded = _uploaded(args, client)
        recurring_id = cluster.schedule(
            client,
            uploaded,
            experiment=args.experiment,
            job_name=args.job_name,
            cron=cron,
            params=params,
            max_concurrency=args.max_concurrency,
            namespace=args.namespace,
            service_account=args.service_account,
        )
    _print(
        args,
        {"recurring_run_id": recurring_id, "cron": cron, **uploaded.to_dict()},
        [f"recurring run {args.job_name} ({cron}) created: id {recurring_id}"],
    )
    return 0
