"""How the pipeline's tasks are launched from the component image: kfp.local's Docker task
handler swapped for buildah's for the run only, each task's command as compiled, the pipeline
root at its own path and a fresh /tmp the only mounts, as the image's own user."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from kfp.local import docker_task_handler

from finrisk.images.buildah import BuildahContainer
from finrisk.images.pipeline_runner import (
    BuildahTaskHandler,
    buildah_task_handler,
    share_folders,
)


def test_the_handler_is_swapped_for_the_run_only() -> None:
    original = docker_task_handler.DockerTaskHandler
    with pytest.raises(RuntimeError), buildah_task_handler():
        assert docker_task_handler.DockerTaskHandler is BuildahTaskHandler
        raise RuntimeError("a task failed")
    assert docker_task_handler.DockerTaskHandler is original


def test_a_task_runs_its_compiled_command_with_the_pipeline_root_and_tmp(tmp_path: Path) -> None:
    command = ["sh", "-c", "python -m kfp.dsl.executor_main", "--executor_input", '{"a": 1}']
    handler = BuildahTaskHandler(
        "img:1", command, str(tmp_path), runner=None, env_vars={"MLFLOW_TRACKING_URI": "http://x"}
    )
    argv = handler.argv(BuildahContainer("c1"), tmp_path / "t")
    assert argv[argv.index("c1") :] == ["c1", "--", *command]
    volumes = [argv[i + 1] for i, word in enumerate(argv) if word == "--volume"]
    assert sorted(volumes) == sorted([f"{tmp_path}:{tmp_path}", f"{tmp_path / 't'}:/tmp"])
    assert argv[argv.index("--env") + 1] == "MLFLOW_TRACKING_URI=http://x"
    assert "--user" not in argv  # the image's USER, as on a cluster


def test_the_pipeline_roots_folders_are_shared_and_files_left_alone(tmp_path: Path) -> None:
    (tmp_path / "run" / "task").mkdir(parents=True)
    (tmp_path / "run" / "task" / "out").write_text("x")
    (tmp_path / "run" / "task" / "out").chmod(0o600)
    share_folders(tmp_path)
    for folder in (tmp_path, tmp_path / "run", tmp_path / "run" / "task"):
        assert stat.S_IMODE(folder.stat().st_mode) & 0o1777 == 0o1777, folder
    assert stat.S_IMODE((tmp_path / "run" / "task" / "out").stat().st_mode) == 0o600
