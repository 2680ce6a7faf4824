"""A pickle that runs code when loaded: it writes a marker file. Planted where a model file is
expected, it shows whether anything unpickles that file."""

from __future__ import annotations

import pickle
from pathlib import Path


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        # What an attacker's artifact would do, made harmless: create a file.
        return (Path.write_text, (str(self.marker), "code from an artifact ran"))  # type: ignore[return-value]


def plant(target: Path, marker: Path) -> None:
    target.write_bytes(pickle.dumps(_Payload(marker)))
