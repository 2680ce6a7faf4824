"""Start, find and end the background processes of the local stack.

A pid file holds the pid and the kernel's start time of the process, so that `down` never ends a
process that merely reuses a recycled pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from finrisk.errors import FinriskError
from finrisk.settings import LOOPBACK


def _start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; it only waits for its parent to reap it
        return None
    return int(fields[19])


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks


class PidFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> PidRecord | None:
        try:
            data = json.loads(self.path.read_text())
            return PidRecord(pid=int(data["pid"]), start_ticks=int(data["start_ticks"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, pid: int) -> PidRecord:
        ticks = _start_ticks(pid)
        if ticks is None:
            raise FinriskError(f"process {pid} ended as soon as it started")
        record = PidRecord(pid=pid, start_ticks=ticks)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"pid": pid, "start_ticks": ticks}))
        return record

    def running(self) -> PidRecord | None:
        record = self.read()
        return record if record is not None and record.alive() else None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def busy_ports(ports: Sequence[int], grace: float) -> list[int]:
    """The ports still in use after waiting up to `grace` seconds for them to be released."""
    deadline = time.monotonic() + grace
    while True:
        busy = [port for port in ports if port_in_use(port)]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.1)


def free_port(run: int = 1) -> int:
    """A port the kernel says is free now, and the `run` - 1 after it too (for tests and ad-hoc
    stacks)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port + run - 1 <= 65_535 and not any(port_in_use(port + i) for i in range(1, run)):
            return port
    raise FinriskError(f"found no {run} consecutive free ports")


def spawn(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (so its children can be ended with it), output to a log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=cwd,
            start_new_session=True,
        )


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    failed: Callable[[], str | None] = lambda: None,
    interval: float = 0.2,
) -> None:
    """Poll `check` until it holds; `failed` returns a reason to give up early (process died)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        reason = failed()
        if reason:
            raise FinriskError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise FinriskError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def terminate(record: PidRecord, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by `record`, then SIGKILL whatever is left after `timeout`."""
    if not record.alive():
        return
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not record.alive() and not _group_alive(record.pid):
            return
        _reap(record.pid)
        time.sleep(0.1)
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(record.pid)


def stop_spawned(child: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the session `spawn` started, then SIGKILL it if `child` is still there after
    `timeout`; reaps `child`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child, so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
