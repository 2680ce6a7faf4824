"""What `make images` keys its cache on and how it asks the tools to build."""

from __future__ import annotations

from pathlib import Path

import pytest

from finrisk.errors import FinriskError
from finrisk.images.build import ca_bundle
from finrisk.images.buildah import Buildah
from finrisk.images.docker_cli import Docker, Podman
from finrisk.images.spec import IMAGES, ImageSpec, inputs_key
from finrisk.settings import ImagesSettings

ROOT = Path(__file__).resolve().parents[2]


def _repo(tmp_path: Path) -> tuple[ImageSpec, Path]:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "Dockerfile").write_text("FROM x\nCOPY lock ./\nCOPY pkg ./pkg\n")
    (tmp_path / "lock").write_text("a==1\n")
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "other.py").write_text("not copied\n")
    return ImageSpec("img", "Dockerfile"), tmp_path


def test_the_key_follows_every_copied_file_base_and_argument(tmp_path: Path) -> None:
    spec, root = _repo(tmp_path)
    key = inputs_key(spec, root, "base1", {"A": "1"})
    assert inputs_key(spec, root, "base1", {"A": "1"}) == key
    (root / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (root / "other.py").write_text("changed, but never copied\n")
    assert inputs_key(spec, root, "base1", {"A": "1"}) == key
    assert inputs_key(spec, root, "base2", {"A": "1"}) != key
    assert inputs_key(spec, root, "base1", {"A": "2"}) != key
    (root / "pkg" / "new.py").write_text("")
    assert inputs_key(spec, root, "base1", {"A": "1"}) != key


def test_a_missing_copied_path_is_named(tmp_path: Path) -> None:
    spec, root = _repo(tmp_path)
    (root / "lock").unlink()
    with pytest.raises(FinriskError, match="copies lock"):
        inputs_key(spec, root, "b", {})


def test_the_images_copy_their_locks_and_no_tests() -> None:
    for spec in IMAGES:
        copied = spec.copied(ROOT)
        assert "requirements.core.lock" in copied and "finrisk" in copied
        assert len([c for c in copied if c.endswith(".lock")]) == 2
        assert not [c for c in copied if c.startswith(("tests", "devtools", ".venv"))]


def test_the_ca_bundle_is_a_build_secret_never_a_copy(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("cert")
    for tool in (Buildah(), Docker(), Podman()):
        command = tool.build_command(Path("D"), Path("."), ["t"], {"K": "v"}, bundle)
        assert f"id=ca_bundle,src={bundle}" in command
        assert command[command.index("--secret") - 1] != "--build-arg"
        assert tool.build_command(Path("D"), Path("."), ["t"], {}, None).count("--secret") == 0
    buildah = Buildah().build_command(Path("D"), Path("."), ["t"], {}, None)
    assert {"--isolation=chroot", "--layers", "--pull=never"} <= set(buildah)
    for dockerfile in ("serving/Dockerfile", "components/Dockerfile"):
        text = (ROOT / dockerfile).read_text(encoding="utf-8")
        assert "--mount=type=secret,id=ca_bundle" in text and "ca_bundle ." not in text


def test_the_ca_bundle_comes_from_the_setting_else_pips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("cert")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("PIP_CERT", str(bundle))
    assert ca_bundle(ImagesSettings()) == bundle
    monkeypatch.delenv("PIP_CERT")
    assert ca_bundle(ImagesSettings()) is None
    with pytest.raises(FinriskError, match="not a file"):
        ca_bundle(ImagesSettings(ca_bundle=tmp_path / "missing.pem"))


def test_both_dockerfiles_share_the_dependency_layer() -> None:
    """A layer cache installs the core's lock once for both images only if every instruction
    down to that install is the same."""

    def prefix(dockerfile: str) -> list[str]:
        lines = [
            line
            for line in (ROOT / dockerfile).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        end = next(i for i, line in enumerate(lines) if "-r requirements.core.lock" in line)
        return lines[: end + 1]

    assert prefix("serving/Dockerfile") == prefix("components/Dockerfile")
