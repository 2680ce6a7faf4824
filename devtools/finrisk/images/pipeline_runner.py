"""The whole retraining pipeline with every task run from the component image, under buildah.

kfp.local orchestrates, as for `finrisk pipeline run --local`: it compiles the DAG, and for
each task takes the compiled container spec (image, command, args), resolves its placeholders
into the executor input as KFP's launcher does, and hands them to the DockerRunner's task
handler. No docker daemon runs here, so that handler is swapped, for the run only, for one that
launches the same image, command and args with `buildah run` (finrisk.images.buildah): as the
image's user, on the host network, with the pipeline root mounted at its own path (where the
executor input points the task's artifacts and output file) and a fresh /tmp, the only
writable folders a pod with a read-only root file system would have (a task that writes
anywhere else fails, as it would there).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kfp.local import DockerRunner, docker_task_handler, status
from kfp.local.task_handler_interface import ITaskHandler

from finrisk.images.buildah import Buildah, BuildahContainer
from finrisk.pipelines.local import LocalRunResult, run_local

# The image's user is not the one running this: the folders it writes into are shared like a
# pod's emptyDir (sticky, so no user removes another's files).
SHARED = 0o1777


class BuildahTaskHandler(ITaskHandler):
    """One task: the compiled spec's image, command and args (placeholders resolved)."""

    def __init__(
        self,
        image: str,
        full_command: list[str],
        pipeline_root: str,
        runner: Any,
        env_vars: dict[str, str] | None = None,
    ) -> None:
        self.image = image
        self.full_command = full_command
        self.pipeline_root = Path(pipeline_root)
        self.env_vars = env_vars or {}

    def argv(self, container: BuildahContainer, tmp: Path) -> list[str]:
        return container.command(
            self.full_command,
            env=self.env_vars,
            volumes={self.pipeline_root: str(self.pipeline_root), tmp: "/tmp"},
        )

    def run(self) -> status.Status:
        share_folders(self.pipeline_root)
        tmp = Path(tempfile.mkdtemp(prefix="finrisk-task-tmp-"))
        tmp.chmod(SHARED)
        try:
            with Buildah().container(self.image) as container:
                task = subprocess.Popen(
                    self.argv(container, tmp),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                assert task.stdout is not None
                # kfp.local indents what a task prints under its name, as with docker's logs.
                for line in task.stdout:
                    print(line, end="")
                code = task.wait()
                # A pod's read-only root file system would have refused any other write.
                written = container.changed_files(ignore=(str(self.pipeline_root), "/tmp"))
                if code == 0 and written:
                    print(f"the task wrote outside /tmp and the pipeline root: {written[:5]}")
                    code = 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return status.Status.SUCCESS if code == 0 else status.Status.FAILURE


def share_folders(root: Path) -> None:
    """Make the pipeline root's folders writable by the image's user: kfp.local creates some
    of them as this process's user before the task runs."""
    root.chmod(SHARED)
    for folder in root.rglob("*"):
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(folder.stat().st_mode | SHARED)


@contextmanager
def buildah_task_handler() -> Iterator[None]:
    """kfp.local's DockerRunner tasks launched by buildah, for the duration only."""
    original = docker_task_handler.DockerTaskHandler
    docker_task_handler.DockerTaskHandler = BuildahTaskHandler
    try:
        yield
    finally:
        docker_task_handler.DockerTaskHandler = original


def run_in_images(
    arguments: Mapping[str, Any],
    *,
    pipeline_root: str | Path,
    tracking_uri: str,
    environment: Mapping[str, str] | None = None,
) -> LocalRunResult:
    """`finrisk pipeline run --local` with every task in the component image the pipeline
    names (finrisk.settings: images); the tasks see `environment` and MLFLOW_TRACKING_URI
    only, not this process's environment, as in a pod."""
    runner = DockerRunner(environment={**(environment or {}), "MLFLOW_TRACKING_URI": tracking_uri})
    with buildah_task_handler():
        return run_local(
            arguments, pipeline_root=pipeline_root, tracking_uri=tracking_uri, runner=runner
        )
