"""Unit fixtures shared by the bridge's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finrisk.serving.bridge.app import build_bridge
from finrisk.serving.bridge.loop import Bridge
from finrisk.settings import BridgeSettings, Settings


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    """A bridge built from settings but not started (no Kafka): its parts are driven by hand."""
    bridge = build_bridge(
        Settings(bridge=BridgeSettings(detector_model="d", sink="none")), serve_http=False
    )
    yield bridge
    bridge.runtime.consumer_ = None  # a test's stand-in is not closed
    bridge.close()
