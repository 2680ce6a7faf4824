"""The repository's distributions: real folders (no symlink), one `finrisk` namespace, one
version, sub-commands from entry points (the images' locks: tests/unit/test_image_locks.py)."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import finrisk
from finrisk.cli import COMMANDS_GROUP, build_parser
from finrisk.version import __version__

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("serving", "components", "pipelines", "devtools", "dashboard")
# What only developers install: none of it may reach an image (tests/unit/test_image_locks.py).
DEVELOPMENT_ONLY = (
    "pytest",
    "ruff",
    "mypy",
    "deptry",
    "import-linter",
    "schemathesis",
    "tritonclient",
    "bqemulator",
    "duckdb",
    "skl2onnx",
    "playwright",
)


def _pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))


def _pins(lock: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / lock).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line)
        if match:
            pins[re.sub(r"\[.*\]", "", match[1]).lower()] = match[2]
    return pins


def test_no_symlink_in_the_repository() -> None:
    links = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", ".finrisk", "local_outputs")]
        links += [Path(folder, name) for name in dirs + files if Path(folder, name).is_symlink()]
    assert links == []


def test_make_installs_every_distribution() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (line,) = [line for line in makefile.splitlines() if line.startswith("DISTRIBUTIONS :=")]
    assert line.split(":=")[1].split() == [".", *(f"./{member}" for member in MEMBERS)]


def test_one_namespace_over_every_folder_and_one_version() -> None:
    # A portion with an __init__.py would hide the others; each folder is on the path.
    folders = [ROOT, *(ROOT / member for member in MEMBERS)]
    for folder in folders:
        assert not (folder / "finrisk" / "__init__.py").exists(), folder
        assert _pyproject(folder)["project"]["version"] == __version__, folder
    assert {Path(p).resolve() for p in finrisk.__path__} == {f / "finrisk" for f in folders}
    for member in MEMBERS:
        requires = _pyproject(ROOT / member)["project"]["dependencies"]
        # The serving distribution asks for the core's `jit` extra (the numba tree kernel).
        pins = {re.sub(r"\[[a-z,]+\]", "", r) for r in requires}
        assert f"finrisk=={__version__}" in pins, member


def test_each_distribution_adds_its_own_sub_commands() -> None:
    declared = {}
    for folder in (ROOT, *(ROOT / member for member in MEMBERS)):
        commands = _pyproject(folder)["project"].get("entry-points", {}).get(COMMANDS_GROUP, {})
        for name, target in commands.items():
            module, function = target.split(":")
            assert callable(getattr(import_module(module), function)), target
            # Each command's module lives in its own distribution's folder.
            assert Path(import_module(module).__file__ or "").is_relative_to(folder), target
            declared[name] = target
    installed = {entry.name: entry.value for entry in entry_points(group=COMMANDS_GROUP)}
    assert installed == declared
    assert set(declared) == {
        *("bench", "bridge", "dashboard", "data", "demo", "labels", "monitor", "pipeline"),
        *("images", "serve", "stack", "train"),
    }
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"bridge", "produce", "serve", "train", "evaluate", "stack"} <= set(commands)


def test_every_core_module_is_held_by_the_import_contracts() -> None:
    """A new module of the core must be named in the contracts that keep it off the
    distributions built on it and off the development tools."""
    contracts = _pyproject(ROOT)["tool"]["importlinter"]["contracts"]
    (core_contract,) = [c for c in contracts if c["name"].startswith("the core imports none")]
    listed = set(core_contract["source_modules"])
    core = {
        f"finrisk.{path.stem}"
        for path in (ROOT / "finrisk").iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").exists()) and path.stem != "__main__"
    }
    assert core == listed
