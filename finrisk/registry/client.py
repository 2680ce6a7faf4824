"""Log, register, alias and load finrisk models in the MLflow registry.

The tracking URI is, in order: the `tracking_uri` argument, MLFLOW_TRACKING_URI, the URI set by
an earlier `log_model` / `mlflow.set_tracking_uri`, else the local stack's server.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
import onnxruntime
import pandas as pd
import sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException, RestException

from finrisk.compiled import (
    DEFAULT_TOLERANCE,
    CompiledModel,
    compile_model,
    model_kind,
    require_parity,
)
from finrisk.errors import FinriskError
from finrisk.registry.artifacts import folder_digest, read_files, write_files
from finrisk.registry.metadata import model_metadata
from finrisk.registry.names import (
    ARTIFACT_KEY,
    CHAMPION,
    TAG_ARTIFACT_SHA256,
    TAG_CODE_VERSION,
    TAG_DATA_FINGERPRINT,
    TAG_KIND,
    TAG_PIPELINE_RUN_ID,
    canonical_kind,
)
from finrisk.registry.pyfunc import signature
from finrisk.version import code_version

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "finrisk"
MLMODEL_PATH = "model"
# The pyfunc is logged as a model from code (this file), not as a pickled object.
MODEL_CODE = Path(__file__).with_name("mlflow_model.py")


@dataclass
class LoadedModel:
    """A registered version, loaded: its compiled runtime and metadata, and the trained finrisk
    model when asked for (None at serving time, which never unpickles)."""

    name: str
    version: ModelVersion
    model: Any
    compiled: CompiledModel
    metadata: dict[str, Any]
    alias: str | None = None
    # The training data's reference profile (finrisk.monitoring.profile); None for versions
    # registered before profiles were logged.
    profile: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return str(self.metadata["kind"])

    @property
    def version_number(self) -> str:
        return str(self.version.version)

    @property
    def run_id(self) -> str | None:
        return self.version.run_id


@dataclass(frozen=True)
class ModelRef:
    """`models:/<name>@<alias>` (follows the alias) or `models:/<name>/<version>` (pinned)."""

    name: str
    alias: str | None = None
    version: str | None = None

    @property
    def uri(self) -> str:
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )


_REF = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def parse_model_uri(uri: str) -> ModelRef:
    match = _REF.match(uri.strip())
    if not match:
        raise FinriskError(
            f"model reference {uri!r} must be models:/<name>@<alias> or models:/<name>/<version>"
        )
    return ModelRef(match["name"], alias=match["alias"], version=match["version"])


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    import os

    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if is_tracking_uri_set():
        return str(mlflow.get_tracking_uri())
    from finrisk.settings import Settings

    return Settings().mlflow.tracking_uri


def registry_client(tracking_uri: str | None = None) -> MlflowClient:
    """A client whose registry is the tracking server's. `MlflowClient(tracking_uri=...)` alone
    takes its registry from MLFLOW_REGISTRY_URI when that is set, and `mlflow.set_registry_uri`
    (which `register` calls) sets it for every child process too: a client meant for one server
    would then read another's registry."""
    uri = resolve_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def _mlflow_errors(what: str, uri: str | None = None) -> Iterator[None]:
    """MLflow's exceptions (and unreachable servers) as FinriskErrors saying what failed."""
    try:
        yield
    except MlflowException as exc:
        where = f" at {uri}" if uri else ""
        raise FinriskError(f"{what} failed{where}: {exc.message}") from exc
    except OSError as exc:  # requests' connection errors derive from OSError
        raise FinriskError(f"{what}: cannot reach MLflow at {uri}: {exc}") from exc


def pip_requirements() -> list[str]:
    """What the pyfunc needs at load time (explicit: inference costs seconds per log)."""
    return [
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"onnx=={onnx.__version__}",
        f"onnxruntime=={onnxruntime.__version__}",
    ]


def log_model(
    model: Any,
    kind: str,
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    data_fingerprint: str | None = None,
    pipeline_run_id: str | None = None,
    parity_data: pd.DataFrame | None = None,
    parity_tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[str, str]:
    """Compile `model`, prove parity, log it as an MLflow pyfunc in a new run: (run_id, model_uri).

    The run carries params, metrics and tags (kind, data fingerprint, code version, pipeline run
    id; `tags` may set them too). Raises FinriskError when compiled and original disagree.
    """
    kind = canonical_kind(kind)
    actual = model_kind(model)
    if actual != kind:
        raise FinriskError(f"log_model was told kind {kind!r} but got a {actual} model")
    compiled = compile_model(model)
    parity = require_parity(model, compiled, parity_data, tolerance=parity_tolerance)
    run_tags = {TAG_KIND: kind, TAG_CODE_VERSION: code_version()}
    if data_fingerprint:
        run_tags[TAG_DATA_FINGERPRINT] = data_fingerprint
    if pipeline_run_id:
        run_tags[TAG_PIPELINE_RUN_ID] = pipeline_run_id
    run_tags.update({k: str(v) for k, v in (tags or {}).items()})
    provenance = {
        k: run_tags[k]
        for k in (TAG_DATA_FINGERPRINT, TAG_CODE_VERSION, TAG_PIPELINE_RUN_ID)
        if k in run_tags
    }
    metric_values = {k: float(v) for k, v in (metrics or {}).items()}
    metadata = model_metadata(
        model, kind, compiled, parity, provenance=provenance, metrics=metric_values
    )
    uri = resolve_tracking_uri(tracking_uri)
    # The fluent API (runs, log_model) reads the process-wide URI; later registry calls that
    # name no URI then talk to the same server.
    mlflow.set_tracking_uri(uri)
    with (
        _mlflow_errors("logging the model", uri),
        tempfile.TemporaryDirectory() as tmp,
        # MLflow prints "View run ..." links on stdout, where commands print their results.
        contextlib.redirect_stdout(sys.stderr),
    ):
        folder = write_files(Path(tmp) / ARTIFACT_KEY, model, compiled, metadata)
        run_tags[TAG_ARTIFACT_SHA256] = folder_digest(folder)
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            mlflow.set_tags(run_tags)
            if params:
                mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
            metric_values["compiled_parity_max_abs_diff"] = parity.max_abs_diff
            mlflow.log_metrics(metric_values)
            with warnings.catch_warnings():
                # The signature is explicit; an input example would make MLflow run the model.
                warnings.filterwarnings("ignore", message=".*input example was not provided.*")
                info = mlflow.pyfunc.log_model(
                    name=MLMODEL_PATH,
                    python_model=str(MODEL_CODE),
                    artifacts={ARTIFACT_KEY: str(folder)},
                    signature=signature(kind, list(compiled.feature_names)),
                    pip_requirements=pip_requirements(),
                    metadata={"finrisk_kind": kind, "feature_names": list(compiled.feature_names)},
                )
            return run.info.run_id, str(info.model_uri)


def register(
    model_uri: str,
    name: str,
    tags: Mapping[str, str] | None = None,
    *,
    tracking_uri: str | None = None,
) -> str:
    """Register `model_uri` under `name` (created if new) with version tags; the version number.

    The version carries the artifact digest its run recorded (`TAG_ARTIFACT_SHA256`): what
    `load` checks the downloaded files against."""
    uri = resolve_tracking_uri(tracking_uri)
    with _mlflow_errors(f"registering {model_uri} as {name!r}", uri):
        mlflow.set_registry_uri(uri)
        mlflow.set_tracking_uri(uri)
        version = mlflow.register_model(
            model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()}
        )
        client = registry_client(uri)
        run_tags = client.get_run(version.run_id).data.tags if version.run_id else {}
        digest = run_tags.get(TAG_ARTIFACT_SHA256)
        if digest is None:
            raise FinriskError(
                f"{model_uri} was not logged by finrisk's log_model (no {TAG_ARTIFACT_SHA256} "
                "tag on its run): it cannot be verified when loaded"
            )
        client.set_model_version_tag(name, str(version.version), TAG_ARTIFACT_SHA256, digest)
    return str(version.version)


def set_alias(
    name: str, alias: str, version: str | int, *, tracking_uri: str | None = None
) -> None:
    client = registry_client(tracking_uri)
    with _mlflow_errors(f"setting alias {alias!r} of {name!r} to version {version}"):
        client.set_registered_model_alias(name, alias, str(version))


def delete_alias(name: str, alias: str, *, tracking_uri: str | None = None) -> None:
    client = registry_client(tracking_uri)
    with _mlflow_errors(f"deleting alias {alias!r} of {name!r}"):
        client.delete_registered_model_alias(name, alias)


def _missing(exc: MlflowException) -> bool:
    code = getattr(exc, "error_code", "") or ""
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
        isinstance(exc, RestException) and "not found" in str(exc).lower()
    )


def get_version(name: str, alias: str, *, tracking_uri: str | None = None) -> ModelVersion | None:
    """The version `alias` points at; None when the model or the alias does not exist."""
    client = registry_client(tracking_uri)
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise FinriskError(f"looking up {name}@{alias} failed: {exc.message}") from exc
    except OSError as exc:
        raise FinriskError(f"looking up {name}@{alias}: cannot reach MLflow: {exc}") from exc


def get_model_version(
    name: str, version: str | int, *, tracking_uri: str | None = None
) -> ModelVersion:
    client = registry_client(tracking_uri)
    with _mlflow_errors(f"looking up version {version} of {name!r}"):
        return client.get_model_version(name, str(version))


def load(
    name: str,
    alias: str = CHAMPION,
    *,
    version: str | int | None = None,
    tracking_uri: str | None = None,
    threads: int = 1,
    python_model: bool = False,
) -> LoadedModel:
    """Download and load `name`@`alias` (or an exact `version`): compiled runtime and metadata,
    data only; with `python_model`, also the trained Python model (a pickle: only tools that
    compare the original model ask for it). The files must match the digest recorded at
    registration; a version registered before digests were recorded loads as data only, with
    a warning, and its pickle never."""
    uri = resolve_tracking_uri(tracking_uri)
    if version is None:
        found = get_version(name, alias, tracking_uri=uri)
        if found is None:
            raise FinriskError(
                f"registered model {name!r} has no version with alias {alias!r} at {uri}"
            )
        model_version = found
    else:
        model_version = get_model_version(name, version, tracking_uri=uri)
    client = registry_client(uri)
    with (
        tempfile.TemporaryDirectory() as tmp,
        _mlflow_errors(f"downloading {name} version {model_version.version}", uri),
    ):
        # The version's own artifact location: `models:/` URIs would resolve against the
        # process-wide registry URI rather than `uri`.
        location = client.get_model_version_download_uri(name, str(model_version.version))
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location.rstrip('/')}/artifacts/{ARTIFACT_KEY}",
            dst_path=tmp,
            tracking_uri=uri,
        )
        folder = Path(local)
        if not folder.is_dir():
            raise FinriskError(f"{name} version {model_version.version} is not a finrisk model")
        digest = (model_version.tags or {}).get(TAG_ARTIFACT_SHA256)
        if digest is None:
            unverified = (
                f"{name} version {model_version.version} has no {TAG_ARTIFACT_SHA256} tag "
                "(registered before artifacts were verified)"
            )
            if python_model:
                raise FinriskError(f"{unverified}: its pickle is not opened; register it again")
            log.warning("%s: loading its data files unchecked; register it again", unverified)
        files = read_files(folder, threads=threads, python_model=python_model, digest=digest)
    return LoadedModel(
        name=name,
        version=model_version,
        model=files.model,
        compiled=files.compiled,
        metadata=files.metadata,
        alias=alias if version is None else None,
        profile=files.profile,
    )


def load_uri(
    model_uri: str, *, tracking_uri: str | None = None, threads: int = 1, python_model: bool = False
) -> LoadedModel:
    """load() from `models:/<name>@<alias>` or `models:/<name>/<version>`."""
    ref = parse_model_uri(model_uri)
    options: dict[str, Any] = {
        "tracking_uri": tracking_uri,
        "threads": threads,
        "python_model": python_model,
    }
    if ref.alias:
        return load(ref.name, ref.alias, **options)
    return load(ref.name, version=ref.version, **options)
