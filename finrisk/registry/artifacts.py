"""The files of one registered finrisk model, in one folder.

model.joblib    the trained finrisk model (finrisk.models.persistence format: a pickle)
compiled/       compiled.json + model.onnx (finrisk.compiled): data only
metadata.json   kind, feature order, threshold or bands, provenance, parity report
profile.json    the training data's reference profile (finrisk.monitoring.profile), when the
                model has one: what live traffic is compared with

Serving reads the data files only: the pickle is opened by training-time code that needs the
Python model (evaluation against the champion), never by the predictor. And nothing is read
before the folder's SHA-256 digest (`folder_digest`, every file) matches the one recorded in
the registry at logging time: a file changed in the artifact store is refused, not run.
"""

from __future__ import annotations

import hashlib
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
PROFILE_FILE = "profile.json"


@dataclass
class ModelFiles:
    model: Any
    compiled: CompiledModel
    metadata: dict[str, Any]
    profile: dict[str, Any] | None = None


def write_files(
    directory: Path, model: Any, compiled: CompiledModel, metadata: dict[str, Any]
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, directory / MODEL_FILE)
    compiled.save(directory / COMPILED_DIR)
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=1, sort_keys=True))
    profile = getattr(model, "profile_", None)
    if profile is not None:
        (directory / PROFILE_FILE).write_text(json.dumps(profile, sort_keys=True))
    return directory


def folder_digest(directory: Path) -> str:
    """SHA-256 over every file of the folder (relative path and bytes, in path order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_files(
    directory: Path, *, threads: int = 1, python_model: bool = True, digest: str | None = None
) -> ModelFiles:
    """The folder's model: compiled runtime and metadata, and with `python_model` the trained
    Python model (a pickle: never at serving time). With `digest`, nothing is read unless the
    folder matches it."""
    if digest is not None:
        found = folder_digest(directory)
        if found != digest:
            raise FinriskError(
                f"{directory}: the files differ from those registered (SHA-256 {found[:12]}..., "
                f"registered {digest[:12]}...): refusing to load a changed artifact"
            )
    metadata_path = directory / METADATA_FILE
    if not metadata_path.is_file():
        raise FinriskError(f"{directory} is not a finrisk model folder ({METADATA_FILE} missing)")
    metadata = json.loads(metadata_path.read_text())
    model = load_model(directory / MODEL_FILE) if python_model else None
    compiled = CompiledModel.load(directory / COMPILED_DIR, threads=threads)
    if list(compiled.feature_names) != list(metadata.get("feature_names", [])):
        raise FinriskError(f"{directory}: compiled feature order differs from the metadata's")
    profile_path = directory / PROFILE_FILE
    profile = json.loads(profile_path.read_text()) if profile_path.is_file() else None
    return ModelFiles(model=model, compiled=compiled, metadata=metadata, profile=profile)
