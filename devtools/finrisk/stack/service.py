"""One local service of the stack: how to prepare it, start it, check it and end it.

Each service is a small subclass (kafka.py, mlflow_server.py, bigquery_emulator.py) that says
what it runs and how health is checked; the life cycle lives here once.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from finrisk.errors import FinriskError
from finrisk.settings import Settings
from finrisk.stack import process


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running", "unhealthy" or "stopped"
    pid: int | None
    address: str
    log: str

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "address": self.address,
            "log": self.log,
        }


class Service(ABC):
    name: str
    start_timeout: float = 90.0
    # Started by a plain `finrisk stack up`; others only when named.
    default: bool = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.home / self.name
        self.pidfile = process.PidFile(self.dir / f"{self.name}.pid")
        self.log = self.dir / f"{self.name}.log"

    @property
    @abstractmethod
    def ports(self) -> Sequence[int]:
        """Every port this service listens on (all on 127.0.0.1)."""

    @property
    @abstractmethod
    def address(self) -> str:
        """What a client connects to."""

    @abstractmethod
    def command(self) -> Sequence[str]: ...

    def environment(self) -> Mapping[str, str]:
        return {}

    def prepare(self) -> None:  # noqa: B027 (most services need no preparation)
        """Download, format, create folders: whatever must exist before the first start."""

    @abstractmethod
    def healthy(self) -> bool:
        """A real check that the service answers, not only that its port is open."""

    def require_tools(self, *tools: str) -> None:
        for tool in tools:
            if shutil.which(tool) is None:
                raise FinriskError(
                    f"{self.name} needs `{tool}` on PATH; install it (README: Prerequisites)"
                )

    def status(self) -> ServiceStatus:
        record = self.pidfile.running()
        if record is None:
            state = "stopped"
        else:
            state = "running" if self.healthy() else "unhealthy"
        return ServiceStatus(
            name=self.name,
            state=state,
            pid=record.pid if record else None,
            address=self.address,
            log=str(self.log),
        )

    def up(self) -> bool:
        """Start unless already running; True when this call started it."""
        record = self.pidfile.running()
        if record is not None:
            process.wait_until(
                self.healthy, self.start_timeout, f"{self.name} (pid {record.pid}) is not healthy"
            )
            return False
        self.pidfile.remove()
        # A process that has just died (say, a SIGKILLed broker) may hold its ports a moment longer.
        busy = process.busy_ports(self.ports, grace=5.0)
        if busy:
            raise FinriskError(
                f"cannot start {self.name}: port {', '.join(map(str, busy))} on 127.0.0.1 is "
                "busy (another program, or a stack under another FINRISK_HOME); free it or "
                f"choose other ports (FINRISK_{self.name.upper()}__PORT)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        child = process.spawn(self.command(), self.log, self.environment(), cwd=self.dir)
        record = self.pidfile.write(child.pid)

        def died() -> str | None:
            if child.poll() is None:
                return None
            return f"exited with code {child.returncode}; log {self.log}:\n" + process.log_tail(
                self.log
            )

        try:
            process.wait_until(self.healthy, self.start_timeout, f"{self.name}", failed=died)
        except FinriskError:
            process.terminate(record)
            self.pidfile.remove()
            raise
        return True

    def down(self) -> bool:
        """End the process this stack started; True when there was one."""
        record = self.pidfile.running()
        self.pidfile.remove()
        if record is None:
            return False
        process.terminate(record)
        return True
