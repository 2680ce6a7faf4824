"""The compiled model's fast tree evaluator: one numba kernel over a Forest's arrays (forest.py).

The kernel is our own source, compiled once per machine (numba's on-disk cache, when it can
write one) and the same for every model: a model only brings arrays. Why it is faster than
ONNX Runtime's TreeEnsemble (docs/serving.md, "Compiled models"): a tree step is latency
bound (node word -> input value -> compare -> next node), so eight rows walk each tree
together and their steps overlap, and rows go in blocks that stay in the L1 cache while
every tree passes over them.

numba is optional (the `jit` extra of finrisk, which the serving distribution installs):
without it `available()` is False and compiled models run on ONNX Runtime.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from finrisk.compiled.forest import FEATURE_MASK, FEATURE_SHIFT, MISSING_RIGHT_SHIFT, Forest

numba: Any
try:
    import numba
except ImportError:  # the ONNX Runtime path serves then
    numba = None

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]
LEFT_MASK = 0xFFFFFFFF
# Rows per block: 128 rows of a few dozen float64 features stay in L1 while all trees pass.
BLOCK_ROWS = 128
# Each of the worker threads takes at least this many rows (below, one thread is cheaper).
PARALLEL_MIN_ROWS = 2048
SIGNATURE = "void(float64[:, ::1], float64[::1], int64[::1], float64[::1], int64[::1], int64[::1], float64[:, ::1])"  # noqa: E501
# Seconds the kernel took to compile or load from numba's cache in this process (cold start).
compile_seconds: float | None = None


def available() -> bool:
    return numba is not None


def _step(x: Array, row: int, threshold: Array, meta: npt.NDArray[np.int64], i: int) -> int:
    """The next node for `row` from node i: left child, or the one after it to go right.

    NaN compares false both ways: `v > t` sends it left, and the missing-right bit right.
    A leaf (its own left child, threshold +inf, missing-right 0) returns itself.
    """
    # Unsigned indices: numba then skips the negative-index wraparound on every read (~20%).
    m = meta[np.uint64(i)]
    v = x[np.uint64(row), np.uint64((m >> FEATURE_SHIFT) & FEATURE_MASK)]
    go_right = np.int64(v > threshold[np.uint64(i)]) | (
        np.int64(v != v) & ((m >> MISSING_RIGHT_SHIFT) & 1)
    )
    return (m & LEFT_MASK) + go_right


def _kernel(
    x: Array,
    threshold: Array,
    meta: npt.NDArray[np.int64],
    value: Array,
    roots: npt.NDArray[np.int64],
    targets: npt.NDArray[np.int64],
    out: Array,
) -> None:
    step = _jit_step
    n = x.shape[0]
    out[:, :] = 0.0
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        for k in range(roots.shape[0]):
            root, target = roots[k], targets[k]
            r = start
            while r + 8 <= stop:
                i0 = i1 = i2 = i3 = i4 = i5 = i6 = i7 = root
                while True:
                    n0 = step(x, r, threshold, meta, i0)
                    n1 = step(x, r + 1, threshold, meta, i1)
                    n2 = step(x, r + 2, threshold, meta, i2)
                    n3 = step(x, r + 3, threshold, meta, i3)
                    n4 = step(x, r + 4, threshold, meta, i4)
                    n5 = step(x, r + 5, threshold, meta, i5)
                    n6 = step(x, r + 6, threshold, meta, i6)
                    n7 = step(x, r + 7, threshold, meta, i7)
                    done = (
                        (n0 == i0) & (n1 == i1) & (n2 == i2) & (n3 == i3)
                        & (n4 == i4) & (n5 == i5) & (n6 == i6) & (n7 == i7)
                    )  # fmt: skip
                    i0, i1, i2, i3, i4, i5, i6, i7 = n0, n1, n2, n3, n4, n5, n6, n7
                    if done:
                        break
                out[r, target] += value[i0]
                out[r + 1, target] += value[i1]
                out[r + 2, target] += value[i2]
                out[r + 3, target] += value[i3]
                out[r + 4, target] += value[i4]
                out[r + 5, target] += value[i5]
                out[r + 6, target] += value[i6]
                out[r + 7, target] += value[i7]
                r += 8
            while r < stop:
                i = root
                while True:
                    following = step(x, r, threshold, meta, i)
                    if following == i:
                        break
                    i = following
                out[r, target] += value[i]
                r += 1


# Compiled lazily, inlined into the kernel: the kernel's eight walks are then plain code.
_jit_step: Any = numba.njit(inline="always", nogil=True)(_step) if numba is not None else None


@functools.cache
def _compiled() -> Any:
    """The kernel compiled for float64 C arrays; numba's disk cache when it has a place for it."""
    global compile_seconds
    assert numba is not None
    started = time.perf_counter()
    try:
        kernel = numba.njit(SIGNATURE, nogil=True, cache=True)(_kernel)
    except RuntimeError:
        # No writable cache location (e.g. a read-only install and no home): compile in memory.
        kernel = numba.njit(SIGNATURE, nogil=True)(_kernel)
    compile_seconds = time.perf_counter() - started
    log.info("tree kernel ready in %.2f s", compile_seconds)
    return kernel


def evaluator(forest: Forest, threads: int = 1) -> Callable[[Array], Array]:
    """values (n, n_features) float64 C-contiguous -> raw (n, n_targets) leaf sums.

    With threads > 1, batches of at least PARALLEL_MIN_ROWS rows per thread are split across a
    pool (the kernel releases the GIL)."""
    if numba is None:
        raise RuntimeError("numba is not installed: use the ONNX Runtime evaluator")
    kernel = _compiled()
    arrays = (forest.threshold, forest.meta, forest.value, forest.roots, forest.targets)
    n_targets = forest.n_targets
    pool = ThreadPoolExecutor(threads, thread_name_prefix="trees") if threads > 1 else None

    def raw(values: Array) -> Array:
        out = np.empty((len(values), n_targets), dtype=np.float64)
        parts = min(threads, len(values) // PARALLEL_MIN_ROWS)
        if pool is None or parts < 2:
            kernel(values, *arrays, out)
            return out
        bounds = np.linspace(0, len(values), parts + 1).astype(int)
        spans = list(itertools.pairwise(bounds.tolist()))
        list(pool.map(lambda s: kernel(values[s[0] : s[1]], *arrays, out[s[0] : s[1]]), spans))
        return out

    return raw
