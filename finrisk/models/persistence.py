"""Saving and loading finrisk models (joblib), refusing files that are not ours."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import sklearn

from finrisk.errors import FinriskError
from finrisk.models.base import MODEL_FORMAT_VERSION


def save_model(model: Any, path: str | Path) -> Path:
    """Write a fitted finrisk model to `path` (parent folders created)."""
    if not hasattr(model, "metadata_"):
        raise FinriskError(f"{type(model).__name__} is not a trained finrisk model")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, target)
    return target


def load_model(path: str | Path) -> Any:
    """Read a model written by `save_model`; warns when the sklearn version differs."""
    source = Path(path)
    if not source.is_file():
        raise FinriskError(f"model file {source} does not exist")
    try:
        model = joblib.load(source)
    except Exception as exc:  # joblib raises many types for a file that is not a pickle
        raise FinriskError(f"{source} is not a readable model file: {exc}") from exc
    metadata = getattr(model, "metadata_", None)
    if not isinstance(metadata, dict) or "format_version" not in metadata:
        raise FinriskError(f"{source} holds a {type(model).__name__}, not a finrisk model")
    if metadata["format_version"] != MODEL_FORMAT_VERSION:
        raise FinriskError(
            f"{source} has model format {metadata['format_version']}, this finrisk reads "
            f"{MODEL_FORMAT_VERSION}: retrain it"
        )
    if metadata.get("sklearn_version") != sklearn.__version__:
        warnings.warn(
            f"{source} was trained with scikit-learn {metadata.get('sklearn_version')}, "
            f"running {sklearn.__version__}: scores may differ",
            stacklevel=2,
        )
    return model
