"""The files of one registered finrisk model, in one folder.

model.joblib    the trained finrisk model (finrisk.models.persistence format)
compiled/       compiled.json + model.onnx (finrisk.compiled)
metadata.json   kind, feature order, threshold or bands, provenance, parity report
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finrisk.compiled import CompiledModel
from finrisk.errors import FinriskError
from finrisk.models.persistence import load_model, save_model

MODEL_FILE = "model.joblib"
COMPILED_DIR = "compiled"
METADATA_FILE = "metadata.json"


@dataclass
class ModelFiles:
    model: Any
    compiled: CompiledModel
    metadata: dict[str, Any]


def write_files(
    directory: Path, model: Any, compiled: CompiledModel, metadata: dict[str, Any]
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, directory / MODEL_FILE)
    compiled.save(directory / COMPILED_DIR)
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=1, sort_keys=True))
    return directory


def read_files(directory: Path, *, threads: int = 1) -> ModelFiles:
    metadata_path = directory / METADATA_FILE
    if not metadata_path.is_file():
        raise FinriskError(f"{directory} is not a finrisk model folder ({METADATA_FILE} missing)")
    metadata = json.loads(metadata_path.read_text())
    model = load_model(directory / MODEL_FILE)
    compiled = CompiledModel.load(directory / COMPILED_DIR, threads=threads)
    if list(compiled.feature_names) != list(metadata.get("feature_names", [])):
        raise FinriskError(f"{directory}: compiled feature order differs from the metadata's")
    return ModelFiles(model=model, compiled=compiled, metadata=metadata)
