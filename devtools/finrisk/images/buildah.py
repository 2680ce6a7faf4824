"""buildah: builds without a daemon, and runs a command in an image's filesystem where no
container runtime can (chroot isolation: no namespaces, no rlimits to set).

Running here is what the image tests use: the command runs as the image's user (or the one
given), on the host's network, with the environment and mounts given, and `changed_files`
shows what it wrote to the image's own filesystem (the container's overlay upper layer), which
a read-only root file system would have refused.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from finrisk.errors import FinriskError
from finrisk.images.tool import ImageTool, on_path

ISOLATION = "--isolation=chroot"
# buildah prints sizes in decimal units.
# What `buildah run` itself writes into the container while a command runs (a marker file that
# tells programs they are in a container), not the program's doing.
RUN_MARKERS = ("/run/.containerenv",)
UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


class Buildah(ImageTool):
    name = "buildah"

    @classmethod
    def works(cls) -> bool:
        return on_path(cls.name)

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
        # --layers: each instruction's layer is kept in buildah's storage and reused when the
        # instruction and what it reads are unchanged (the dependency layer across images too).
        command = [self.name, "bud", ISOLATION, "--layers", "--pull=never", "-f", str(dockerfile)]
        for tag in tags:
            command += ["-t", tag]
        for key, value in build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        if ca_bundle is not None:
            command += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
        return [*command, str(context)]

    def image_id(self, ref: str) -> str | None:
        done = self._quiet(["inspect", "--type", "image", "--format", "{{.FromImageID}}", ref])
        return done.stdout.strip() or None if done.returncode == 0 else None

    def size(self, ref: str) -> int:
        """Bytes, to buildah's rounding: it lists sizes only as text ("1.2 GB")."""
        image_id = self.image_id(ref) or ""
        for image in json.loads(self._checked(["images", "--json", "--all"]) or "[]"):
            if image_id and image_id.startswith(str(image.get("id"))):
                number, unit = str(image["size"]).split()
                return round(float(number) * UNITS[unit])
        raise FinriskError(f"buildah lists no image {ref}")

    @contextmanager
    def container(self, image: str) -> Iterator[BuildahContainer]:
        """A working container from `image`, removed on exit."""
        name = self._checked(["from", "--pull=never", "-q", image]).strip()
        try:
            yield BuildahContainer(name)
        finally:
            self._quiet(["rm", name])


class BuildahContainer:
    def __init__(self, name: str) -> None:
        self.name = name

    def command(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[Path, str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
    ) -> list[str]:
        """`buildah run` of argv on the host network; user None: the image's USER."""
        command = ["buildah", "run", ISOLATION, "--network", "host"]
        if user is not None:
            command += ["--user", user]
        if workdir is not None:
            command += ["--workingdir", workdir]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        for host, target in (volumes or {}).items():
            command += ["--volume", f"{host}:{target}"]
        return [*command, self.name, "--", *argv]

    def config(self) -> dict[str, object]:
        """The image configuration the container was made from (user, env, entrypoint...)."""
        done = subprocess.run(
            ["buildah", "inspect", "--type", "container", self.name],
            capture_output=True,
            text=True,
            check=True,
        )
        config: dict[str, object] = json.loads(done.stdout)["OCIv1"]["config"]
        return config

    @contextmanager
    def mounted(self) -> Iterator[Path]:
        """The container's root file system, read from the host."""
        done = subprocess.run(
            ["buildah", "mount", self.name], capture_output=True, text=True, check=True
        )
        try:
            yield Path(done.stdout.strip())
        finally:
            subprocess.run(["buildah", "umount", self.name], capture_output=True, check=False)

    def changed_files(self, ignore: Sequence[str] = ()) -> list[str]:
        """Paths written in the container's own layer (overlay's upper directory), but for the
        mount points the run itself creates and those under `ignore`."""
        with self.mounted() as root:
            upper = root.parent / "diff"
            if root.name != "merged" or not upper.is_dir():
                raise FinriskError(f"buildah's storage is not overlay here ({root})")
            changed = []
            for path in upper.rglob("*"):
                relative = "/" + str(path.relative_to(upper))
                if path.is_dir() and not any(path.iterdir()):
                    continue  # an empty directory: a mount point
                if (
                    path.is_dir()
                    or relative in RUN_MARKERS
                    or any(
                        relative == prefix or relative.startswith(prefix.rstrip("/") + "/")
                        for prefix in ignore
                    )
                ):
                    continue
                changed.append(relative)
            return sorted(changed)
