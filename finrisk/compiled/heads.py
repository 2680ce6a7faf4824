"""The numpy part of a compiled model: what turns raw tree sums (or the inputs) into a score.

A head is a small JSON tree of operations (`spec`), so a compiled model is data (ONNX graph +
JSON), never a pickle. `build_head` turns a spec into one Python closure at load time.

Sources (read the inputs or the graph's output):
  {"op": "tree", "target": k, "base": b}          raw[:, k] + b
  {"op": "linear", "steps": [...], "coef": [...], "intercept": c}
      steps: {"op": "signed_log1p"} | {"op": "standardize", "mean": [...], "scale": [...]}
Transforms (take "of"):
  {"op": "expit"}, {"op": "isolation", "denominator": d}, {"op": "sigmoid_calibration", "a", "b"},
  {"op": "isotonic", "x": [...], "y": [...], "lo": x_min, "hi": x_max}, {"op": "clip", "lo", "hi"},
  {"op": "mean", "of": [...]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Head = Callable[[Array, Array | None], Array]


def expit(z: Array) -> Array:
    # 1 / (1 + exp(-z)) without overflow warnings for large |z| (scipy's expit, in numpy).
    out: Array = np.exp(-np.logaddexp(0.0, -z))
    return out


def signed_log1p(values: Array) -> Array:
    # copysign: one pass fewer than sign(v) * log1p(|v|), same values (signed zeros included).
    out: Array = np.copysign(np.log1p(np.abs(values)), values)
    return out


def build_head(spec: Mapping[str, Any]) -> Head:
    """A function (inputs, raw graph output) -> 1-D scores for the spec."""
    op = spec.get("op")
    builder = _BUILDERS.get(str(op))
    if builder is None:
        raise ValueError(f"unknown compiled head operation {op!r}")
    return builder(spec)


def tree_targets(spec: Mapping[str, Any]) -> list[int]:
    """Graph output columns the spec reads (to check the graph has them)."""
    if spec.get("op") == "tree":
        return [int(spec["target"])]
    of = spec.get("of")
    children = of if isinstance(of, list) else [of] if isinstance(of, Mapping) else []
    return [t for child in children for t in tree_targets(child)]


def _tree(spec: Mapping[str, Any]) -> Head:
    target, base = int(spec["target"]), float(spec["base"])

    def head(values: Array, raw: Array | None) -> Array:
        assert raw is not None, "a tree head needs the graph output"
        return raw[:, target] + base

    return head


def _linear(spec: Mapping[str, Any]) -> Head:
    steps: list[Callable[[Array], Array]] = []
    for step in spec["steps"]:
        if step["op"] == "signed_log1p":
            steps.append(signed_log1p)
        elif step["op"] == "standardize":
            mean = None if step.get("mean") is None else np.asarray(step["mean"], dtype=np.float64)
            scale = (
                None if step.get("scale") is None else np.asarray(step["scale"], dtype=np.float64)
            )
            steps.append(_standardize(mean, scale))
        else:
            raise ValueError(f"unknown linear step {step['op']!r}")
    coef = np.asarray(spec["coef"], dtype=np.float64)
    intercept = float(spec["intercept"])
    last = spec["steps"][-1] if spec["steps"] else {}
    if last.get("op") == "standardize":
        # ((x - mean) / scale) @ coef == x @ (coef / scale) - mean @ (coef / scale): folded once
        # here, which saves a pass over every row (occlusion scores features + 1 rows per row).
        steps.pop()
        if last.get("scale") is not None:
            coef = coef / np.asarray(last["scale"], dtype=np.float64)
        if last.get("mean") is not None:
            intercept -= float(np.asarray(last["mean"], dtype=np.float64) @ coef)

    def head(values: Array, raw: Array | None) -> Array:
        x = values
        for step_fn in steps:
            x = step_fn(x)
        out: Array = x @ coef + intercept
        return out

    return head


def _standardize(mean: Array | None, scale: Array | None) -> Callable[[Array], Array]:
    def step(x: Array) -> Array:
        if mean is not None:
            x = x - mean
        if scale is not None:
            x = x / scale
        return x

    return step


def _unary(fn: Callable[[Array, Mapping[str, Any]], Array]) -> Callable[[Mapping[str, Any]], Head]:
    def builder(spec: Mapping[str, Any]) -> Head:
        inner = build_head(spec["of"])

        def head(values: Array, raw: Array | None) -> Array:
            return fn(inner(values, raw), spec)

        return head

    return builder


def _isolation(z: Array, spec: Mapping[str, Any]) -> Array:
    denominator = float(spec["denominator"])
    if denominator == 0.0:  # a forest fitted on one sample: sklearn sets every score to 1
        return np.ones_like(z)
    out: Array = 2.0 ** (-z / denominator)
    return out


def _sigmoid_calibration(z: Array, spec: Mapping[str, Any]) -> Array:
    return expit(-(float(spec["a"]) * z + float(spec["b"])))


def _isotonic(spec: Mapping[str, Any]) -> Head:
    inner = build_head(spec["of"])
    xs = np.asarray(spec["x"], dtype=np.float64)
    ys = np.asarray(spec["y"], dtype=np.float64)
    lo, hi = float(spec["lo"]), float(spec["hi"])

    def head(values: Array, raw: Array | None) -> Array:
        out: Array = np.interp(np.clip(inner(values, raw), lo, hi), xs, ys)
        return out

    return head


def _clip(z: Array, spec: Mapping[str, Any]) -> Array:
    out: Array = np.clip(z, float(spec["lo"]), float(spec["hi"]))
    return out


def _mean(spec: Mapping[str, Any]) -> Head:
    members = [build_head(member) for member in spec["of"]]
    if not members:
        raise ValueError("a mean head needs at least one member")

    def head(values: Array, raw: Array | None) -> Array:
        total = members[0](values, raw).copy()
        for member in members[1:]:
            total += member(values, raw)
        out: Array = total / len(members)
        return out

    return head


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Head]] = {
    "tree": _tree,
    "linear": _linear,
    "expit": _unary(lambda z, _spec: expit(z)),
    "isolation": _unary(_isolation),
    "sigmoid_calibration": _unary(_sigmoid_calibration),
    "isotonic": _isotonic,
    "clip": _unary(_clip),
    "mean": _mean,
}
