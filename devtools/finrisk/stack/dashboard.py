"""`finrisk dashboard` as a stack service on 127.0.0.1, reading the local stack's stores.

Not started by a plain `finrisk stack up` (it shows what the demo or the bridge wrote);
`finrisk stack up dashboard` and `make demo` start it, `finrisk stack down` ends it. The demo
restarts it on its run's tables through `environment` (DashboardSettings from FINRISK_DASHBOARD__*).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import httpx

from finrisk.stack.service import Service


class Dashboard(Service):
    name = "dashboard"
    default = False
    start_timeout = 120.0

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.dashboard.port,)

    @property
    def address(self) -> str:
        return self.settings.dashboard.url

    def command(self) -> Sequence[str]:
        return [sys.executable, "-m", "finrisk", "dashboard"]

    def environment(self) -> Mapping[str, str]:
        from finrisk.dashboard.cli import environment

        return environment(self.settings.dashboard)

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.address}/_stcore/health", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
