"""BigQuery emulator (bqemulator, DuckDB-backed): the anomaly log's stand-in for BigQuery."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from finrisk.errors import FinriskError
from finrisk.settings import LOOPBACK
from finrisk.stack.service import Service


class BigQueryEmulator(Service):
    name = "bigquery"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.bigquery.port, self.settings.bigquery.grpc_port)

    @property
    def address(self) -> str:
        return self.settings.bigquery.endpoint

    def command(self) -> Sequence[str]:
        bq = self.settings.bigquery
        executable = Path(sys.executable).with_name("bqemulator")
        return [
            str(executable),
            "start",
            "--rest-host",
            LOOPBACK,
            "--rest-port",
            str(bq.port),
            "--grpc-host",
            LOOPBACK,
            "--grpc-port",
            str(bq.grpc_port),
            "--project",
            bq.project,
            "--persistent",
            "--data-dir",
            str(self.dir / "data"),
            "--log-level",
            "warning",
        ]

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self._install_spatial_extension()

    def _install_spatial_extension(self) -> None:
        """Put the spatial extension shipped on PyPI where DuckDB's INSTALL finds it.

        The emulator runs `INSTALL spatial`, which downloads unless the extension is already in
        $HOME/.duckdb/extensions; the emulator gets a HOME of its own so the user's is untouched.
        """
        import duckdb
        import duckdb_extension_spatial

        version = f"v{duckdb.__version__}"
        shipped = (
            Path(duckdb_extension_spatial.__path__[0])
            / "extensions"
            / version
            / "spatial.duckdb_extension"
        )
        if not shipped.is_file():
            raise FinriskError(
                f"duckdb-extension-spatial has no build for DuckDB {version}; "
                "reinstall the lock (make setup)"
            )
        platform = duckdb.execute("PRAGMA platform").fetchone()
        target = (
            self.home / ".duckdb" / "extensions" / version / str(platform[0] if platform else "")
        )
        target.mkdir(parents=True, exist_ok=True)
        if not (target / shipped.name).exists():
            shutil.copyfile(shipped, target / shipped.name)

    @property
    def home(self) -> Path:
        return self.dir / "home"

    def environment(self) -> Mapping[str, str]:
        # Format extensions make the emulator download DuckDB extensions: no network here.
        return {"BQEMU_ENABLE_FORMAT_EXTENSIONS": "false", "HOME": str(self.home)}

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.address}/readyz", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
