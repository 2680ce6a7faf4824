"""Trained finrisk models compiled for serving: fast tree evaluators plus a small numpy head.

`compile_model(model)` -> CompiledModel with `score(values)`; `check_parity` / `require_parity`
prove compiled and original scores agree. See compiler.py for the supported estimators.
"""

from finrisk.compiled.compiler import model_kind
from finrisk.compiled.parity import (
    DEFAULT_TOLERANCE,
    ParityReport,
    check_parity,
    original_scores,
    probe_rows,
    require_parity,
)
from finrisk.compiled.runtime import (
    ENGINES,
    ONNX_FILE,
    SPEC_FILE,
    CompiledModel,
    available_engines,
    compile_model,
)
from finrisk.kinds import DETECTOR, MODEL_KINDS, RISK

__all__ = [
    "DEFAULT_TOLERANCE",
    "DETECTOR",
    "ENGINES",
    "MODEL_KINDS",
    "ONNX_FILE",
    "RISK",
    "SPEC_FILE",
    "CompiledModel",
    "ParityReport",
    "available_engines",
    "check_parity",
    "compile_model",
    "model_kind",
    "original_scores",
    "probe_rows",
    "require_parity",
]
