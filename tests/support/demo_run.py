"""The small demo run the e2e tests share (tests/e2e/conftest.py runs it once)."""

from __future__ import annotations

from dataclasses import dataclass

from finrisk.demo.summary import DemoSummary
from finrisk.settings import Settings

# The data the small run streams (tests recompute it with generate(**STREAM)).
STREAM = {"users": 80, "days": 30, "seed": 4}


@dataclass(frozen=True)
class DemoRun:
    settings: Settings
    summary: DemoSummary
    log: str
