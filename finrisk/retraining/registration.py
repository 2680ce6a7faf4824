"""Registry stages: the challenger pair into MLflow, the champion out of it, and promotion.

Everything goes through finrisk.registry (aliases `challenger` / `champion` on the two
registered models). The tracking URI is resolved by finrisk.registry: MLFLOW_TRACKING_URI
(a ConfigMap on the cluster), else the local stack's server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finrisk import registry
from finrisk.gate import MODEL_KINDS
from finrisk.registry.names import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_MODEL_NAMES,
    METRIC_TAG_PREFIX,
    TAG_CODE_VERSION,
    TAG_DATA_FINGERPRINT,
    TAG_PIPELINE_RUN_ID,
)
from finrisk.version import code_version

if TYPE_CHECKING:
    from finrisk.retraining.evaluation import ChampionModel

DEFAULT_EXPERIMENT = "finrisk-retraining"
TAG_GATE_DECISION = "gate_decision"
TAG_GATE_REASON = "gate_reason"
# The champion version the gate compared the challenger with (offline, on the same rows).
TAG_GATE_CHAMPION_VERSION = "gate_champion_version"
TAG_PIPELINE_RUN_NAME = "pipeline_run_name"
# MLflow caps tag values at 5000 characters.
_MAX_TAG = 4900


def tracking_uri() -> str:
    return registry.resolve_tracking_uri()


@dataclass(frozen=True)
class Provenance:
    """What every challenger version is tagged with."""

    data_fingerprint: str
    pipeline_run_id: str
    pipeline_run_name: str = ""
    gate_action: str = ""  # finrisk.gate's PROMOTE, SHADOW or KEEP; "" outside a pipeline
    gate_reason: str = ""

    def tags(self) -> dict[str, str]:
        tags = {
            TAG_DATA_FINGERPRINT: self.data_fingerprint,
            TAG_CODE_VERSION: code_version(),
            TAG_PIPELINE_RUN_ID: self.pipeline_run_id,
        }
        if self.pipeline_run_name:
            tags[TAG_PIPELINE_RUN_NAME] = self.pipeline_run_name
        if self.gate_action:
            tags[TAG_GATE_DECISION] = self.gate_action
            tags[TAG_GATE_REASON] = self.gate_reason[:_MAX_TAG]
        return tags


def metric_tags(metrics: Mapping[str, float]) -> dict[str, str]:
    return {f"{METRIC_TAG_PREFIX}{k}": f"{v:.6g}" for k, v in metrics.items()}


def recorded_metrics(tags: Mapping[str, str]) -> dict[str, float]:
    """The metrics a version was tagged with at registration (inverse of metric_tags)."""
    out: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                out[key.removeprefix(METRIC_TAG_PREFIX)] = float(value)
            except ValueError:
                continue
    return out


def register_challenger(
    model_paths: Mapping[str, str | Path],
    evaluation: Mapping[str, Any],
    provenance: Provenance,
    *,
    model_names: Mapping[str, str] = DEFAULT_MODEL_NAMES,
    experiment: str = DEFAULT_EXPERIMENT,
) -> dict[str, str]:
    """Log and register both models, tagged, with alias `challenger`; returns kind -> version."""
    from finrisk.models.persistence import load_model
    from finrisk.models.selection import selection_metrics, selection_params

    versions: dict[str, str] = {}
    for kind in MODEL_KINDS:
        model = load_model(model_paths[kind])
        metrics = {k: float(v) for k, v in evaluation["challenger"][kind].items()}
        tags = {**provenance.tags(), **metric_tags(metrics)}
        champion = (evaluation.get("champion") or {}).get(kind) or {}
        if champion.get("version") is not None:
            tags[TAG_GATE_CHAMPION_VERSION] = str(champion["version"])
        _, model_uri = registry.log_model(
            model,
            kind,
            experiment=experiment,
            # The risk model's candidates table (CV ROC-AUC, Brier) beside its test metrics; the
            # whole choice is also in the logged metadata (training.selection).
            metrics={**metrics, **selection_metrics(model)},
            params={"pipeline_run_id": provenance.pipeline_run_id, **selection_params(model)},
            tags=tags,
            data_fingerprint=provenance.data_fingerprint,
            pipeline_run_id=provenance.pipeline_run_id,
        )
        version = registry.register(model_uri, model_names[kind], tags)
        registry.set_alias(model_names[kind], CHALLENGER, version)
        versions[kind] = version
    return versions


def promote(
    versions: Mapping[str, str],
    *,
    model_names: Mapping[str, str] = DEFAULT_MODEL_NAMES,
    tracking_uri: str | None = None,
) -> None:
    """Point alias `champion` at the given versions of both models."""
    for kind in MODEL_KINDS:
        registry.set_alias(model_names[kind], CHAMPION, versions[kind], tracking_uri=tracking_uri)


def load_champions(
    *, model_names: Mapping[str, str] = DEFAULT_MODEL_NAMES, alias: str = CHAMPION
) -> dict[str, ChampionModel]:
    """The current champion of each kind that has one, with the metrics recorded for it."""
    # Imported here: promotion, which needs none of the evaluation code, stays quick to start.
    from finrisk.retraining.evaluation import ChampionModel

    champions: dict[str, ChampionModel] = {}
    for kind in MODEL_KINDS:
        if registry.get_version(model_names[kind], alias) is None:
            continue
        loaded = registry.load(model_names[kind], alias)  # data only: nothing unpickled
        champions[kind] = ChampionModel(
            loaded.compiled, loaded.version_number, recorded_metrics(loaded.version.tags or {})
        )
    return champions


def alias_versions(
    alias: str,
    *,
    model_names: Mapping[str, str] = DEFAULT_MODEL_NAMES,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """kind -> the ModelVersion `alias` points at (None when unset)."""
    return {
        kind: registry.get_version(model_names[kind], alias, tracking_uri=tracking_uri)
        for kind in MODEL_KINDS
    }


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
