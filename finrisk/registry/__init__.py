"""finrisk models in the MLflow registry: log (compiled + parity-checked), register, alias, load.

Registered models are MLflow pyfunc models whose artifacts hold the pickled finrisk model, its
compiled ONNX graph and a metadata JSON (see artifacts.py), vouched for by a SHA-256 in the
version's tags; aliases `champion` / `challenger`. Serving loads the data files only.
"""

from finrisk.registry.client import (
    DEFAULT_EXPERIMENT,
    LoadedModel,
    ModelRef,
    delete_alias,
    get_model_version,
    get_version,
    load,
    load_uri,
    log_model,
    parse_model_uri,
    pip_requirements,
    register,
    registry_client,
    resolve_tracking_uri,
    set_alias,
)
from finrisk.registry.names import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_MODEL_NAMES,
    TAG_ARTIFACT_SHA256,
    TAG_CODE_VERSION,
    TAG_DATA_FINGERPRINT,
    TAG_KIND,
    TAG_PIPELINE_RUN_ID,
    canonical_kind,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_MODEL_NAMES",
    "TAG_ARTIFACT_SHA256",
    "TAG_CODE_VERSION",
    "TAG_DATA_FINGERPRINT",
    "TAG_KIND",
    "TAG_PIPELINE_RUN_ID",
    "LoadedModel",
    "ModelRef",
    "canonical_kind",
    "delete_alias",
    "get_model_version",
    "get_version",
    "load",
    "load_uri",
    "log_model",
    "parse_model_uri",
    "pip_requirements",
    "register",
    "registry_client",
    "resolve_tracking_uri",
    "set_alias",
]
