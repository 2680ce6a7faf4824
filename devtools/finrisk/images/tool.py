"""What `make images` asks of an image tool, and which tool this machine has."""

from __future__ import annotations

import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from finrisk.errors import FinriskError

# A registry that cannot be reached must not hold `make images` for minutes.
PULL_TIMEOUT_S = 60.0


class ImageTool(ABC):
    """Builds, tags, measures and pushes images in its own storage (the build cache)."""

    name: str

    @classmethod
    @abstractmethod
    def works(cls) -> bool:
        """Whether the tool is installed and can build here."""

    @abstractmethod
    def build_command(
        self,
        dockerfile: Path,
        context: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        ca_bundle: Path | None,
    ) -> list[str]:
        """The command that builds `dockerfile` with layer caching and no pull of FROM."""

    @abstractmethod
    def _cli(self) -> list[str]:
        """The tool's executable (and global options)."""

    def build(
        self,
        dockerfile: Path,
        context: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        ca_bundle: Path | None,
    ) -> None:
        command = self.build_command(dockerfile, context, tags, build_args, ca_bundle)
        if subprocess.run(command, check=False).returncode != 0:
            raise FinriskError(f"{self.name} could not build {dockerfile} (its output is above)")

    def image_id(self, ref: str) -> str | None:
        done = self._quiet(["image", "inspect", "--format", "{{.Id}}", ref])
        return done.stdout.strip() or None if done.returncode == 0 else None

    def size(self, ref: str) -> int:
        """Bytes of the image, unpacked."""
        done = self._quiet(["image", "inspect", "--format", "{{.Size}}", ref])
        try:
            return int(done.stdout.strip())
        except ValueError:
            raise FinriskError(
                f"{self.name} has no size for {ref}: {done.stderr.strip()}"
            ) from None

    def tag(self, ref: str, new_ref: str) -> None:
        self._checked(["tag", ref, new_ref])

    def pull(self, ref: str) -> bool:
        try:
            return self._quiet(["pull", ref], timeout=PULL_TIMEOUT_S).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def push(self, ref: str) -> None:
        self._checked(["push", ref])

    def _quiet(
        self, args: list[str], timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._cli(), *args], capture_output=True, text=True, check=False, timeout=timeout
        )

    def _checked(self, args: list[str]) -> str:
        done = self._quiet(args)
        if done.returncode != 0:
            raise FinriskError(f"{self.name} {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout


def on_path(executable: str) -> bool:
    return shutil.which(executable) is not None
