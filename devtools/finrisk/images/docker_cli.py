"""Docker (BuildKit) and podman: the same build command line."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from finrisk.images.tool import ImageTool, on_path


class Docker(ImageTool):
    name = "docker"

    @classmethod
    def works(cls) -> bool:
        # The client alone builds nothing: the daemon must answer.
        if not on_path(cls.name):
            return False
        done = subprocess.run([cls.name, "info"], capture_output=True, check=False, timeout=30)
        return done.returncode == 0

    def _cli(self) -> list[str]:
        return [self.name]

    def build_command(
        self,
        dockerfile: Path,
        context: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        ca_bundle: Path | None,
    ) -> list[str]:
        command = [self.name, "build", "-f", str(dockerfile)]
        for tag in tags:
            command += ["-t", tag]
        for key, value in build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        if ca_bundle is not None:
            command += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
        return [*command, str(context)]


class Podman(Docker):
    name = "podman"

    def build_command(
        self,
        dockerfile: Path,
        context: Path,
        tags: Sequence[str],
        build_args: Mapping[str, str],
        ca_bundle: Path | None,
    ) -> list[str]:
        command = super().build_command(dockerfile, context, tags, build_args, ca_bundle)
        # FROM is resolved in local storage first; a base made locally is never pulled.
        return [*command[:2], "--layers", "--pull=never", *command[2:]]
