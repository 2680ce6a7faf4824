"""finrisk's version, one for every distribution in this repository, and which code produced a
model (recorded as a registry tag on every challenger).

`finrisk` is a namespace package shared by the distributions in this repository (the core here,
`serving/`, `components/`, `pipelines/`, `devtools/`), so no portion has an `__init__.py`;
tests/unit/test_distributions.py holds each pyproject.toml to this version.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__version__ = "0.1.0"

# Set at image build time (components/Dockerfile: ARG FINRISK_CODE_VERSION).
CODE_VERSION_ENV = "FINRISK_CODE_VERSION"


def code_version() -> str:
    """`<package version>+<git commit>`: from the image's build arg, else the checkout, else
    the package version alone."""
    pinned = os.environ.get(CODE_VERSION_ENV)
    if pinned:
        return pinned
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
        if commit:
            return f"{__version__}+g{commit}"
    return __version__
