"""Each image's lock: exactly its distributions' dependencies, at the development lock's
versions, no development tool, and the same distributions its Dockerfile installs."""

from __future__ import annotations

import re
from importlib.metadata import distribution

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.test_distributions import DEVELOPMENT_ONLY, ROOT, _pins, _pyproject

# Both images install the core's lock first (their shared layer), then their own.
CORE = "requirements.core"
IMAGES = {
    "serving/Dockerfile": "requirements.serving",
    "components/Dockerfile": "requirements.components",
}
LOCAL = "finrisk"  # the repository's own distributions are installed from the context, not locked


def _editables(requirements_in: str) -> list[str]:
    lines = (ROOT / f"{requirements_in}.in").read_text(encoding="utf-8").splitlines()
    return [line.split()[1] for line in lines if line.startswith("-e ")]


def _closure(folders: list[str]) -> set[str]:
    """Every package the folders' distributions need, followed through the installed packages'
    metadata (markers evaluated here, on Linux and Python 3.11, what the images run)."""
    pending = [
        (str(_pyproject(ROOT / folder)["project"]["name"]), frozenset[str]()) for folder in folders
    ]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras or {""}):
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen if not name.startswith(LOCAL)}


def _lock_names(lock: str) -> set[str]:
    return {canonicalize_name(name) for name in _pins(f"{lock}.lock")}


@pytest.mark.parametrize("lock", [CORE, *IMAGES.values()])
def test_a_lock_holds_exactly_its_distributions_dependencies(lock: str) -> None:
    assert _lock_names(lock) == _closure(_editables(lock))


@pytest.mark.parametrize("lock", [CORE, *IMAGES.values()])
def test_a_lock_pins_the_development_locks_versions_and_no_tool(lock: str) -> None:
    development, pins = _pins("requirements.lock"), _pins(f"{lock}.lock")
    assert pins and all(development.get(name) == pin for name, pin in pins.items())
    assert not set(DEVELOPMENT_ONLY) & set(pins)


def test_each_image_holds_its_own_runtime_only() -> None:
    serving, components = (
        _lock_names(IMAGES["serving/Dockerfile"]),
        _lock_names(IMAGES["components/Dockerfile"]),
    )
    assert "kserve" in serving and not {name for name in serving if name.startswith("kfp")}
    assert "kfp" in components and not {"kserve", "confluent-kafka"} & components
    # The shared layer is in both, so the second install only adds the image's own.
    assert _lock_names(CORE) <= serving & components


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_a_dockerfile_installs_the_core_lock_then_its_own_for_its_distributions(
    dockerfile: str,
) -> None:
    lines = [
        line.strip()
        for line in (ROOT / dockerfile).read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    ]
    installs = [line.split()[-1] for line in lines if line.startswith("-r ")]
    assert installs == [f"{CORE}.lock", f"{IMAGES[dockerfile]}.lock"]
    words = {word for line in lines for word in line.split()}
    assert {word for word in words if word.endswith(".lock")} == set(installs)
    (own,) = [line for line in lines if re.search(r"pip install .*--no-deps \.", line)]
    distributions = [d for d in own.split("--no-deps")[1].split("&&")[0].split() if d != "\\"]
    assert [d.removeprefix("./") for d in distributions] == [
        d.removeprefix("./") for d in _editables(IMAGES[dockerfile])
    ]
