"""The images and what goes into each: read from their Dockerfiles' COPY lines, so the cache
key cannot miss a file the build copies."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from finrisk.errors import FinriskError

# Never copied into an image by intent (.dockerignore says the same to docker's daemon).
IGNORED_PARTS = frozenset({"__pycache__", "build", ".venv", ".finrisk", ".git"})
IGNORED_SUFFIXES = (".pyc", ".egg-info")


@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: str  # relative to the repository root, which is the build context

    def copied(self, root: Path) -> list[str]:
        """The context paths the Dockerfile's COPY instructions read."""
        sources: list[str] = []
        for line in (root / self.dockerfile).read_text(encoding="utf-8").splitlines():
            words = line.split()
            if not words or words[0].upper() != "COPY":
                continue
            if any(word.startswith("--from") for word in words):
                raise FinriskError(f"{self.dockerfile}: COPY --from is not keyed: {line.strip()}")
            sources += [word for word in words[1:-1] if not word.startswith("--")]
        return sources


IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("finrisk-components", "components/Dockerfile"),
    ImageSpec("finrisk-predictor", "serving/Dockerfile"),
)


def _files(root: Path, source: str) -> Iterator[Path]:
    path = root / source
    if not path.exists():
        raise FinriskError(f"a Dockerfile copies {source}, which is not in {root}")
    candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
    for file in candidates:
        relative = file.relative_to(root)
        if file.is_file() and not (
            IGNORED_PARTS & set(relative.parts)
            or any(part.endswith(IGNORED_SUFFIXES) for part in relative.parts)
        ):
            yield file


def inputs_key(spec: ImageSpec, root: Path, base_id: str, build_args: Mapping[str, str]) -> str:
    """sha256 of all that makes the image: its Dockerfile, every file it copies (path and
    bytes), the base image's id and the build arguments."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("dockerfile", (root / spec.dockerfile).read_bytes())
    add("base", base_id.encode())
    for key in sorted(build_args):
        add(f"arg:{key}", build_args[key].encode())
    for source in spec.copied(root):
        for file in _files(root, source):
            add(f"file:{file.relative_to(root).as_posix()}", file.read_bytes())
    return digest.hexdigest()
