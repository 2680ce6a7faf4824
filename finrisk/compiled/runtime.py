"""A compiled model at run time: a tree evaluator for the trees, the numpy head for the rest.

Files: `model.onnx` (absent when the model has no trees) and `compiled.json` (format, kind,
feature order, head spec). The predictor and the registry both load them from here.

Two evaluators of the same ONNX graph (ENGINES): "jit", our numba kernel over arrays read from
the graph at load time (jit.py, forest.py; ~2-3x faster), and "onnx", ONNX Runtime. "auto"
takes "jit" when numba is installed, else "onnx"; the ONNX file stays the portable format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from finrisk.compiled import jit
from finrisk.compiled.compiler import plan_model
from finrisk.compiled.forest import forest_from_graph
from finrisk.compiled.heads import Head, build_head, tree_targets
from finrisk.compiled.onnx_graph import INPUT, tree_ensemble_graph
from finrisk.errors import FinriskError

COMPILED_FORMAT = 1
ONNX_FILE = "model.onnx"
SPEC_FILE = "compiled.json"
Occluder = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
JIT = "jit"
ONNX = "onnx"
AUTO = "auto"
ENGINES = (JIT, ONNX)
# Batches of at least this many rows use the multi-threaded session (when threads > 1): below
# it, waking a second thread costs more than it saves.
PARALLEL_MIN_ROWS = 256


def _session(graph: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn a core between requests and slow every other process on it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class CompiledModel:
    """score(values) for a (n, n_features) float64 matrix in `feature_names` order."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        graph: bytes | None,
        threads: int = 1,
        engine: str = AUTO,
    ) -> None:
        if spec.get("format") != COMPILED_FORMAT:
            raise FinriskError(
                f"compiled model format {spec.get('format')!r}; this finrisk reads "
                f"{COMPILED_FORMAT}"
            )
        self.spec = dict(spec)
        self.kind: str = spec["kind"]
        self.feature_names: tuple[str, ...] = tuple(spec["feature_names"])
        self.n_targets = int(spec["n_targets"])
        self.round_inputs = bool(spec.get("round_inputs", False))
        # Absent from models compiled before gaps were supported: then nothing may be missing.
        self.missing: frozenset[str] = frozenset(spec.get("missing", ()))
        self.categories: dict[str, list[str]] = dict(spec.get("categories", {}))
        self.graph = graph
        self._head: Head = build_head(spec["head"])
        targets = tree_targets(spec["head"])
        if targets and (graph is None or max(targets) >= self.n_targets):
            raise FinriskError("compiled head reads tree outputs the graph does not have")
        self.threads = threads
        self.engine = resolve_engine(engine)
        self._single: ort.InferenceSession | None = None
        self._parallel: ort.InferenceSession | None = None
        self._jit: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None = None
        if graph is not None and self.engine == JIT:
            forest = forest_from_graph(graph, self.n_features, self.n_targets)
            self._jit = jit.evaluator(forest, threads)
        elif graph is not None:
            self._single = _session(graph, 1)
            if threads > 1:
                self._parallel = _session(graph, threads)

    def with_engine(self, engine: str) -> CompiledModel:
        """The same model on another evaluator (the parity check runs every one)."""
        return CompiledModel(self.spec, self.graph, threads=self.threads, engine=engine)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def raw(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        """The graph's output (sum of leaf values per target), None for tree-less models."""
        if self._jit is not None:
            return self._jit(values)
        if self._single is None:
            return None
        session = self._single
        if self._parallel is not None and len(values) >= PARALLEL_MIN_ROWS:
            session = self._parallel
        out: npt.NDArray[np.float64] = session.run(None, {INPUT: values})[0]
        return out

    def score(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The model's score per row: anomaly score for detectors, probability for risk models."""
        values = self._prepared(values)
        return self._head(values, self.raw(values))

    def occluder(self, reference: npt.NDArray[np.float64]) -> Occluder | None:
        """values -> (n, f + 1) scores, column j with feature j at reference[j], the last column
        the row as given; in one pass over the rows (heads.py). None for models with trees:
        their occluded rows must be scored one by one."""
        if tree_targets(self.spec["head"]):
            return None
        if self.round_inputs:
            reference = reference.astype(np.float32).astype(np.float64)
        head = build_head(self.spec["head"], reference)

        def occluded(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return head(self._prepared(values), None)

        return occluded

    def _prepared(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if values.ndim != 2 or values.shape[1] != self.n_features:
            raise FinriskError(
                f"compiled model takes (rows, {self.n_features}) inputs, got {values.shape}"
            )
        if self.round_inputs:
            return np.ascontiguousarray(values, dtype=np.float32).astype(np.float64)
        if values.dtype != np.float64 or not values.flags.c_contiguous:
            return np.ascontiguousarray(values, dtype=np.float64)
        return values

    def save(self, directory: str | Path) -> list[Path]:
        """Write compiled.json (and model.onnx); returns the files written."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        written = [target / SPEC_FILE]
        written[0].write_text(json.dumps(self.spec, indent=1))
        if self.graph is not None:
            (target / ONNX_FILE).write_bytes(self.graph)
            written.append(target / ONNX_FILE)
        return written

    @classmethod
    def load(cls, directory: str | Path, threads: int = 1, engine: str = AUTO) -> CompiledModel:
        source = Path(directory)
        spec_path = source / SPEC_FILE
        if not spec_path.is_file():
            raise FinriskError(f"{source} holds no compiled model ({SPEC_FILE} missing)")
        spec = json.loads(spec_path.read_text())
        graph_path = source / ONNX_FILE
        graph = graph_path.read_bytes() if graph_path.is_file() else None
        return cls(spec, graph, threads=threads, engine=engine)


def available_engines() -> list[str]:
    """The evaluators this installation can run, fastest first."""
    return [JIT, ONNX] if jit.available() else [ONNX]


def resolve_engine(engine: str) -> str:
    """ "auto" -> the fastest available engine; FinriskError for an unknown or missing one."""
    if engine == AUTO:
        return available_engines()[0]
    if engine not in ENGINES:
        raise FinriskError(
            f"unknown tree engine {engine!r}: choose from auto, {', '.join(ENGINES)}"
        )
    if engine not in available_engines():
        raise FinriskError(f"tree engine {engine!r} is not installed (numba is missing)")
    return engine


def compile_model(model: Any, threads: int = 1, engine: str = AUTO) -> CompiledModel:
    """Compile a trained finrisk detector or risk model (see compiler.py for what is supported)."""
    plan = plan_model(model)
    graph = None
    if plan.trees or plan.n_targets:
        graph, offsets = tree_ensemble_graph(
            plan.trees,
            len(plan.feature_names),
            plan.n_targets,
            float32_inputs=bool(plan.float32_inputs),
        )
        _fold_offsets(plan.head, offsets)
    spec = {
        "format": COMPILED_FORMAT,
        "kind": plan.kind,
        "feature_names": plan.feature_names,
        "n_targets": plan.n_targets,
        "float32_inputs": bool(plan.float32_inputs),
        "round_inputs": plan.round_inputs,
        "missing": plan.missing,
        "categories": plan.categories,
        "head": plan.head,
    }
    return CompiledModel(spec, graph, threads=threads, engine=engine)


def _fold_offsets(node: Any, offsets: npt.NDArray[np.float64]) -> None:
    """Add the value of single-leaf trees (not in the graph) to their target's base."""
    if isinstance(node, list):
        for child in node:
            _fold_offsets(child, offsets)
    elif isinstance(node, dict):
        if node.get("op") == "tree":
            node["base"] = float(node["base"]) + float(offsets[int(node["target"])])
        _fold_offsets(node.get("of"), offsets)
