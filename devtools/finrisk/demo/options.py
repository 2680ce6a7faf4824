"""The demo's sizes: a light module, so `finrisk --help` shows them without loading the demo."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoOptions:
    train_users: int = 400
    train_days: int = 45
    stream_users: int = 300
    stream_days: int = 45
    seed: int = 7
    scored_timeout_s: float = 300.0
    progress: bool = True
