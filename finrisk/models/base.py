"""What every finrisk model shares: named input columns, a feature matrix, version metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sklearn

from finrisk.errors import FinriskError
from finrisk.version import __version__ as finrisk_version

# Bumped when a model's pickled attributes change meaning; loaders refuse other versions.
MODEL_FORMAT_VERSION = 1


def resolve_feature_names(X: pd.DataFrame, feature_names: Sequence[str] | None) -> tuple[str, ...]:
    """The model's input columns: the ones asked for, else every column of the training frame."""
    if not isinstance(X, pd.DataFrame):
        raise FinriskError("finrisk models take a pandas DataFrame with named feature columns")
    names = tuple(feature_names) if feature_names is not None else tuple(map(str, X.columns))
    if not names:
        raise FinriskError("a model needs at least one feature column")
    return names


def feature_matrix(X: pd.DataFrame, feature_names: Sequence[str]) -> npt.NDArray[np.float64]:
    """The columns a model was trained on, in its order, as float64; names what is missing."""
    if not isinstance(X, pd.DataFrame):
        raise FinriskError("finrisk models take a pandas DataFrame with named feature columns")
    missing = [name for name in feature_names if name not in X.columns]
    if missing:
        raise FinriskError(f"feature columns missing from the input: {', '.join(missing)}")
    try:
        values = X.loc[:, list(feature_names)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FinriskError(f"feature columns must be numeric: {exc}") from exc
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise FinriskError(
            f"feature {feature_names[col]!r} is NaN or infinite in row {X.index[row]!r} "
            f"({int(bad.sum())} bad values in all)"
        )
    return values


def labels_vector(y: Any, n_rows: int) -> npt.NDArray[np.int64]:
    """Binary 0/1 labels as int64, checked for shape and values."""
    arr = np.asarray(y)
    if arr.shape != (n_rows,):
        raise FinriskError(f"labels have shape {arr.shape}, expected ({n_rows},)")
    if pd.isna(arr).any():
        raise FinriskError("labels contain missing values")
    values = set(np.unique(arr).tolist())
    if not values <= {0, 1}:
        raise FinriskError(f"labels must be 0/1, found {sorted(map(str, values))[:5]}")
    return arr.astype(np.int64)


def build_metadata(model: Any, feature_names: Sequence[str], **extra: Any) -> dict[str, Any]:
    """Version and training facts carried inside the model file."""
    return {
        "model": type(model).__name__,
        "format_version": MODEL_FORMAT_VERSION,
        "finrisk_version": finrisk_version,
        "sklearn_version": sklearn.__version__,
        "feature_names": list(feature_names),
        **extra,
    }
