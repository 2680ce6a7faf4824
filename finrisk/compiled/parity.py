"""Compiled and original scores must agree: checked at registration and in the tests.

The check scores real rows (when given) and probe rows built from the model itself: every split
threshold of every tree, and the floating-point neighbours on either side of it, so that each
"x <= threshold" decision is exercised right at its edge, where a float32 cast or an off-by-one
comparison would show. For inputs that may be missing, probe rows also hold NaN (boosting's
learnt missing-value direction, linear imputation and indicators); categorical inputs take
their codes and NaN.

Every tree evaluator the installation has (runtime.available_engines: the numba kernel and ONNX
Runtime) scores the rows: a registered model agrees with its original on each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from threadpoolctl import threadpool_limits

from finrisk.compiled.compiler import DETECTOR, model_kind
from finrisk.compiled.forest import forest_from_graph
from finrisk.compiled.runtime import CompiledModel, available_engines
from finrisk.errors import FinriskError
from finrisk.models.encoding import expand_owners

DEFAULT_TOLERANCE = 1e-9
DEFAULT_PROBE_ROWS = 2000
MISSING_SHARE = 0.1


@dataclass(frozen=True)
class ParityReport:
    rows: int
    max_abs_diff: float
    tolerance: float
    flag_mismatches: int  # detectors only: rows whose anomaly flag differs
    engines: tuple[str, ...] = ()  # the tree evaluators checked (worst one reported)

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.flag_mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "flag_mismatches": self.flag_mismatches,
            "engines": list(self.engines),
            "ok": self.ok,
        }


def original_scores(model: Any, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    """What the finrisk model itself returns: anomaly score or risk probability."""
    # One OpenMP thread: same numbers, and sklearn's tree predict otherwise stalls for seconds
    # when the other cores are busy (its threads wait on each other at every tree).
    with threadpool_limits(limits=1, user_api="openmp"):
        if model_kind(model) == DETECTOR:
            return np.asarray(model.anomaly_score(frame), dtype=np.float64)
        return np.asarray(model.risk_probability(frame), dtype=np.float64)


def probe_rows(compiled: CompiledModel, n_rows: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """Rows whose values sit on, just below and just above the model's split thresholds."""
    rng = np.random.default_rng(seed)
    candidates: list[list[float]] = [[0.0, 1.0, -1.0] for _ in compiled.feature_names]
    for feature, split in _splits(compiled):
        for value in (split, np.nextafter(split, -np.inf), np.nextafter(split, np.inf)):
            candidates[feature].append(float(value))
        low32 = np.nextafter(np.float32(split), np.float32(-np.inf))
        high32 = np.nextafter(np.float32(split), np.float32(np.inf))
        candidates[feature].extend([float(low32), float(high32)])
    for feature, (mean, scale) in enumerate(_standardize_stats(compiled)):
        candidates[feature].extend(float(v) for v in mean + scale * rng.normal(size=8))
    for feature, name in enumerate(compiled.feature_names):
        if name in compiled.categories:
            candidates[feature] = [float(c) for c in range(len(compiled.categories[name]))]
    columns = [rng.choice(np.asarray(c, dtype=np.float64), size=n_rows) for c in candidates]
    for feature, name in enumerate(compiled.feature_names):
        if name in compiled.missing:  # a tenth of the rows, whatever the number of thresholds
            columns[feature][rng.random(n_rows) < MISSING_SHARE] = np.nan
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float64)


def check_parity(
    model: Any,
    compiled: CompiledModel,
    data: pd.DataFrame | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    probe: int = DEFAULT_PROBE_ROWS,
    seed: int = 0,
) -> ParityReport:
    """Score `data` (if any) and probe rows with both; report the largest difference."""
    names = list(compiled.feature_names)
    if list(map(str, model.feature_names_)) != names:
        raise FinriskError("the compiled model's feature order differs from the model's")
    frames = []
    if data is not None and len(data):
        # Risk models encode text categories to codes; the compiled model takes the codes.
        encoded = (
            model.encode(data)
            if hasattr(model, "encode")
            else data.loc[:, names].to_numpy(dtype=np.float64)
        )
        frames.append(pd.DataFrame(encoded, columns=names))
    if probe > 0:
        frames.append(pd.DataFrame(probe_rows(compiled, probe, seed), columns=names))
    if not frames:
        raise FinriskError("parity check needs data rows or probe rows")
    frame = pd.concat(frames, ignore_index=True)
    expected = original_scores(model, frame)
    values = frame.to_numpy(dtype=np.float64)
    engines = available_engines() if compiled.graph is not None else [compiled.engine]
    max_diff, flags = 0.0, 0
    for engine in engines:
        runner = compiled if engine == compiled.engine else compiled.with_engine(engine)
        got = runner.score(values)
        # Both NaN would be a broken model, not agreement: NaN differences count as infinite.
        diff = np.abs(expected - got)
        max_diff = max(max_diff, float(diff.max()) if np.isfinite(diff).all() else float("inf"))
        if compiled.kind == DETECTOR:
            threshold = float(model.threshold_)
            flags = max(flags, int(((expected >= threshold) != (got >= threshold)).sum()))
    return ParityReport(
        rows=len(frame),
        max_abs_diff=max_diff,
        tolerance=tolerance,
        flag_mismatches=flags,
        engines=tuple(engines),
    )


def require_parity(
    model: Any, compiled: CompiledModel, data: pd.DataFrame | None = None, **kwargs: Any
) -> ParityReport:
    """check_parity, raising a FinriskError when compiled and original disagree."""
    report = check_parity(model, compiled, data, **kwargs)
    if not report.ok:
        raise FinriskError(
            f"compiled model disagrees with the original: max |diff| {report.max_abs_diff:.3g} "
            f"(tolerance {report.tolerance:.3g}), {report.flag_mismatches} flags differ "
            f"over {report.rows} rows"
        )
    return report


def _splits(compiled: CompiledModel) -> list[tuple[int, float]]:
    if compiled.graph is None:
        return []
    return forest_from_graph(compiled.graph, compiled.n_features, compiled.n_targets).splits()


def _standardize_stats(compiled: CompiledModel) -> list[tuple[float, float]]:
    """(mean, scale) per feature from the first standardize step found, else (0, 1)."""
    stats = [(0.0, 1.0)] * compiled.n_features

    def visit(node: Any) -> bool:
        if isinstance(node, list):
            return any(visit(child) for child in node)
        if not isinstance(node, dict):
            return False
        steps = node.get("steps", [])
        # After an expand step, an input's own value is the first column it owns.
        first, width = list(range(compiled.n_features)), compiled.n_features
        if steps and steps[0].get("op") == "expand":
            owners = expand_owners(steps[0]).tolist()
            first, width = [owners.index(j) for j in range(compiled.n_features)], len(owners)
        for step in steps:
            if step.get("op") == "standardize":
                mean = [(step.get("mean") or [0.0] * width)[k] for k in first]
                scale = [(step.get("scale") or [1.0] * width)[k] for k in first]
                # Standardised after signed_log1p: undo the log for a raw-scale spread.
                logged = any(s.get("op") == "signed_log1p" for s in node["steps"])
                for i, (m, s) in enumerate(zip(mean, scale, strict=True)):
                    stats[i] = (
                        (float(np.sign(m) * np.expm1(abs(m))), float(np.expm1(s)))
                        if logged
                        else (float(m), float(s))
                    )
                return True
        return visit(node.get("of"))

    visit(compiled.spec["head"])
    return stats
