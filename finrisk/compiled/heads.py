"""The numpy part of a compiled model: what turns raw tree sums (or the inputs) into a score.

A head is a small JSON tree of operations (`spec`), so a compiled model is data (ONNX graph +
JSON), never a pickle. `build_head` turns a spec into one Python closure at load time.

Occlusion (which feature moved the score, finrisk.models.reasons) re-scores every row once per
feature with that feature at a reference value. For heads without trees it needs no re-scoring:
the logit of a linear source is a sum of per-feature terms w_j t(x_j), so putting feature j at
its reference moves it by exactly w_j (t(ref_j) - t(x_j)), and every transform above a source
is elementwise. `build_head(spec, reference)` builds that form: (n, f + 1) scores, column j with
feature j at the reference, the last column the row as given.

Sources (read the inputs or the graph's output):
  {"op": "tree", "target": k, "base": b}          raw[:, k] + b
  {"op": "linear", "steps": [...], "coef": [...], "intercept": c}
      steps: {"op": "signed_log1p"} | {"op": "standardize", "mean": [...], "scale": [...]}
           | {"op": "expand", "fill": [...], "indicators": [...], "categories": {j: k}}
      expand (first, finrisk.models.encoding.LinearInputs) imputes gaps, adds missing
      indicators and one-hot blocks; each output column has one owner input column, so
      occlusion swaps all of an input's terms at once.
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

from finrisk.models.encoding import expand, expand_owners

Array = npt.NDArray[np.float64]
Head = Callable[[Array, Array | None], Array]
Builder = Callable[[Mapping[str, Any], Array | None], Head]


def expit(z: Array) -> Array:
    # 1 / (1 + exp(-z)) without overflow warnings for large |z| (scipy's expit, in numpy).
    out: Array = np.exp(-np.logaddexp(0.0, -z))
    return out


def signed_log1p(values: Array) -> Array:
    # copysign: one pass fewer than sign(v) * log1p(|v|), same values (signed zeros included).
    out: Array = np.copysign(np.log1p(np.abs(values)), values)
    return out


def build_head(spec: Mapping[str, Any], reference: Array | None = None) -> Head:
    """A function (inputs, raw graph output) -> 1-D scores for the spec.

    With a reference (tree-less heads only, see `tree_targets`): -> (n, f + 1) occluded scores.
    """
    op = spec.get("op")
    builder = _BUILDERS.get(str(op))
    if builder is None:
        raise ValueError(f"unknown compiled head operation {op!r}")
    return builder(spec, reference)


def tree_targets(spec: Mapping[str, Any]) -> list[int]:
    """Graph output columns the spec reads (to check the graph has them)."""
    if spec.get("op") == "tree":
        return [int(spec["target"])]
    of = spec.get("of")
    children = of if isinstance(of, list) else [of] if isinstance(of, Mapping) else []
    return [t for child in children for t in tree_targets(child)]


def _tree(spec: Mapping[str, Any], reference: Array | None) -> Head:
    if reference is not None:
        raise ValueError("tree heads have no occluded form: re-score the occluded rows instead")
    target, base = int(spec["target"]), float(spec["base"])

    def head(values: Array, raw: Array | None) -> Array:
        assert raw is not None, "a tree head needs the graph output"
        return raw[:, target] + base

    return head


def _linear(spec: Mapping[str, Any], reference: Array | None) -> Head:
    steps: list[Callable[[Array], Array]] = []
    owners: npt.NDArray[np.intp] | None = None
    for position, step in enumerate(spec["steps"]):
        if step["op"] == "expand":
            if position != 0:
                raise ValueError("an expand step must come first")
            owners = expand_owners(step)
            steps.append(_expand(step))
        elif step["op"] == "signed_log1p":
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

    def transformed(x: Array) -> Array:
        for step_fn in steps:
            x = step_fn(x)
        return x

    def head(values: Array, raw: Array | None) -> Array:
        out: Array = transformed(values) @ coef + intercept
        return out

    if reference is None:
        return head
    # Every step works column by column (expand: block by block), so t(ref) is the transformed
    # reference row; an input's term is the sum of the terms of the columns it owns.
    group = None
    if owners is not None:
        group = np.zeros((len(owners), len(reference)))
        group[np.arange(len(owners)), owners] = 1.0

    def input_terms(x: Array) -> Array:
        terms = transformed(x) * coef
        if group is None:
            return terms
        out: Array = terms @ group
        return out

    reference_terms = input_terms(np.asarray(reference, dtype=np.float64)[np.newaxis, :])[0]

    def occluded(values: Array, raw: Array | None) -> Array:
        terms = input_terms(values)
        logit = terms.sum(axis=1) + intercept
        out = np.empty((len(values), len(reference_terms) + 1))
        # Column j: the logit with feature j's term swapped for the reference's; exactly the
        # row's logit where x_j == ref_j, so such a feature contributes exactly 0.
        np.subtract(reference_terms, terms, out=out[:, :-1])
        out[:, :-1] += logit[:, np.newaxis]
        out[:, -1] = logit
        return out

    return occluded


def _expand(layout: Mapping[str, Any]) -> Callable[[Array], Array]:
    def step(x: Array) -> Array:
        return expand(x, layout)

    return step


def _standardize(mean: Array | None, scale: Array | None) -> Callable[[Array], Array]:
    def step(x: Array) -> Array:
        if mean is not None:
            x = x - mean
        if scale is not None:
            x = x / scale
        return x

    return step


def _unary(fn: Callable[[Array, Mapping[str, Any]], Array]) -> Builder:
    # Every transform is elementwise: the same closure serves 1-D scores and occluded matrices.
    def builder(spec: Mapping[str, Any], reference: Array | None) -> Head:
        inner = build_head(spec["of"], reference)

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


def _isotonic(spec: Mapping[str, Any], reference: Array | None) -> Head:
    inner = build_head(spec["of"], reference)
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


def _mean(spec: Mapping[str, Any], reference: Array | None) -> Head:
    members = [build_head(member, reference) for member in spec["of"]]
    if not members:
        raise ValueError("a mean head needs at least one member")

    def head(values: Array, raw: Array | None) -> Array:
        total = members[0](values, raw).copy()
        for member in members[1:]:
            total += member(values, raw)
        out: Array = total / len(members)
        return out

    return head


_BUILDERS: dict[str, Builder] = {
    "tree": _tree,
    "linear": _linear,
    "expit": _unary(lambda z, _spec: expit(z)),
    "isolation": _unary(_isolation),
    "sigmoid_calibration": _unary(_sigmoid_calibration),
    "isotonic": _isotonic,
    "clip": _unary(_clip),
    "mean": _mean,
}
