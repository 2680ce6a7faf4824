"""The retraining pipeline on a Kubeflow Pipelines cluster, through `kfp.Client` (v2beta1 API).

- upload: the pipeline (once) and a version named after the spec hash (idempotent: an
  existing version of that name is reused);
- run: one run of a version in an experiment;
- schedule: a recurring run (6-field cron, seconds first), bounded concurrency, no catch-up
  of missed intervals. The ingest step is compiled with caching off, so every scheduled run
  reads fresh data.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finrisk.errors import FinriskError

DEFAULT_EXPERIMENT = "finrisk-retraining"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#LW-]+$")


@dataclass(frozen=True)
class Uploaded:
    pipeline_id: str
    version_id: str
    version_name: str
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def connect(host: str, *, namespace: str | None = None, token: str | None = None) -> Any:
    """A kfp.Client for the KFP API at `host` (multi-user clusters: give the namespace)."""
    import kfp

    kwargs: dict[str, Any] = {"host": host, "existing_token": token}
    if namespace:
        kwargs["namespace"] = namespace
    return kfp.Client(**kwargs)


def validate_cron(expression: str) -> str:
    """KFP cron: 6 fields, seconds first (`0 0 2 * * *` = 02:00 daily)."""
    fields = expression.split()
    if len(fields) == 5:
        raise FinriskError(
            f"--cron {expression!r} has 5 fields; Kubeflow cron has 6 with seconds first, "
            f"e.g. '0 {expression}'"
        )
    if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
        raise FinriskError(
            f"--cron {expression!r} is not a 6-field cron expression "
            "(seconds minutes hours day-of-month month day-of-week)"
        )
    return " ".join(fields)


def _api_error(action: str, exc: Exception) -> FinriskError:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None) or str(exc)
    # The API answers JSON with a "message"; anything else is shown as it came.
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        body = json.loads(body).get("message", body)
    prefix = f"HTTP {status}: " if status else ""
    return FinriskError(f"Kubeflow Pipelines could not {action}: {prefix}{body}")


def _find_version(client: Any, pipeline_id: str, name: str) -> str | None:
    flt = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )
    response = client.list_pipeline_versions(pipeline_id, filter=flt, page_size=10)
    for version in response.pipeline_versions or []:
        if version.display_name == name:
            return str(version.pipeline_version_id)
    return None


def upload(
    client: Any,
    ir_path: str,
    *,
    pipeline_name: str,
    version_name: str,
    description: str = "",
) -> Uploaded:
    """Make sure the pipeline and the version named `version_name` exist; returns their ids."""
    from kfp_server_api.exceptions import ApiException

    try:
        pipeline_id = client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            pipeline = client.upload_pipeline(
                ir_path, pipeline_name=pipeline_name, description=description or None
            )
            pipeline_id = pipeline.pipeline_id
        existing = _find_version(client, pipeline_id, version_name)
        if existing is not None:
            return Uploaded(pipeline_id, existing, version_name, created=False)
        version = client.upload_pipeline_version(
            ir_path,
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
            description=description or None,
        )
    except ApiException as exc:
        raise _api_error(f"upload {pipeline_name} version {version_name}", exc) from None
    return Uploaded(pipeline_id, version.pipeline_version_id, version_name, created=True)


def upload_current(client: Any, package: Path | None = None) -> Uploaded:
    """Upload `package` (compiled IR YAML), or the pipeline as compiled now, as its version."""
    from finrisk.pipelines.compile import compile_pipeline, spec_hash, version_name
    from finrisk.pipelines.retraining import PIPELINE_DESCRIPTION, PIPELINE_NAME

    with tempfile.TemporaryDirectory(prefix="finrisk-pipeline-") as tmp:
        if package is not None:
            ir_path, version = package, version_name(spec_hash(package))
        else:
            compiled = compile_pipeline(tmp)
            ir_path, version = compiled.ir_path, compiled.version_name
        return upload(
            client,
            str(ir_path),
            pipeline_name=PIPELINE_NAME,
            version_name=version,
            description=PIPELINE_DESCRIPTION,
        )


def experiment_id(client: Any, name: str, namespace: str | None = None) -> str:
    """The id of the experiment called `name`, created when missing."""
    from kfp_server_api.exceptions import ApiException

    try:
        try:
            return str(
                client.get_experiment(experiment_name=name, namespace=namespace).experiment_id
            )
        except ValueError:  # kfp.Client's "no experiment is found"
            return str(client.create_experiment(name, namespace=namespace).experiment_id)
    except ApiException as exc:
        raise _api_error(f"find or create experiment {name}", exc) from None


def run(
    client: Any,
    uploaded: Uploaded,
    *,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    namespace: str | None = None,
    service_account: str | None = None,
) -> str:
    """Start one run of the uploaded version; returns the run id."""
    from kfp_server_api.exceptions import ApiException

    exp = experiment_id(client, experiment, namespace)
    try:
        result = client.run_pipeline(
            experiment_id=exp,
            job_name=run_name,
            params=dict(params),
            pipeline_id=uploaded.pipeline_id,
            version_id=uploaded.version_id,
            service_account=service_account,
        )
    except ApiException as exc:
        raise _api_error(f"start run {run_name}", exc) from None
    return str(result.run_id)


def schedule(
    client: Any,
    uploaded: Uploaded,
    *,
    experiment: str,
    job_name: str,
    cron: str,
    params: Mapping[str, Any],
    max_concurrency: int = 1,
    namespace: str | None = None,
    service_account: str | None = None,
) -> str:
    """Create a recurring run (no catch-up); returns its id."""
    from kfp_server_api.exceptions import ApiException

    if not 1 <= max_concurrency <= 10:
        raise FinriskError(f"--max-concurrency must be between 1 and 10, got {max_concurrency}")
    expression = validate_cron(cron)
    exp = experiment_id(client, experiment, namespace)
    try:
        result = client.create_recurring_run(
            experiment_id=exp,
            job_name=job_name,
            description=f"finrisk retraining on cron '{expression}'",
            cron_expression=expression,
            max_concurrency=max_concurrency,
            no_catchup=True,
            params=dict(params),
            pipeline_id=uploaded.pipeline_id,
            version_id=uploaded.version_id,
            enabled=True,
            service_account=service_account,
        )
    except ApiException as exc:
        raise _api_error(f"create recurring run {job_name}", exc) from None
    return str(result.recurring_run_id)
