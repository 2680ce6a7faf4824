"""Predictor settings and the `finrisk serve` command line."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from finrisk.cli import build_parser
from finrisk.errors import FinriskError
from finrisk.registry import ModelRef
from finrisk.serving.predictor.config import PredictorSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FINRISK_DETECTOR_MODEL_URI", "FINRISK_RISK_MODEL_URI"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_champions_on_loopback() -> None:
    settings = PredictorSettings()
    assert settings.host == "127.0.0.1" and settings.http_port == 8080
    assert settings.grpc_port == 8081  # KServe's gRPC port
    assert settings.model_refs() == {
        "detector": ModelRef("finrisk-anomaly-detector", alias="champion"),
        "risk": ModelRef("finrisk-risk-classifier", alias="champion"),
    }


def test_pinned_versions_from_the_deploy_steps_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINRISK_DETECTOR_MODEL_URI", "models:/finrisk-anomaly-detector/7")
    monkeypatch.setenv("FINRISK_PREDICTOR_MODELS", "anomaly")
    monkeypatch.setenv("FINRISK_PREDICTOR_HOST", "0.0.0.0")
    settings = PredictorSettings()
    assert settings.host == "0.0.0.0"
    assert settings.model_refs() == {"detector": ModelRef("finrisk-anomaly-detector", version="7")}


def test_unknown_model_kinds_are_refused() -> None:
    with pytest.raises(FinriskError, match="unknown model kind 'fraudish'"):
        PredictorSettings(models="detector,fraudish").model_refs()


def test_threads_default_to_the_usable_cores() -> None:
    assert 1 <= PredictorSettings().onnx_threads() <= 4
    assert PredictorSettings(threads=3).onnx_threads() == 3


def test_serve_flags_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("finrisk.serving.predictor.server.serve", lambda s: seen.setdefault("s", s))
    args = build_parser().parse_args(
        ["serve", "--models", "risk", "--risk-uri", "models:/r@challenger", "--http-port", "9001",
         "--reload-interval", "0", "--tracking-uri", "http://127.0.0.1:5055", "--threads", "2"]
    )  # fmt: skip
    assert args.handler(args) == 0
    settings = seen["s"]
    assert settings.http_port == 9001 and settings.reload_interval_s == 0
    assert settings.tracking_uri == "http://127.0.0.1:5055" and settings.threads == 2
    assert settings.model_refs() == {"risk": ModelRef("r", alias="challenger")}


def test_bad_flag_values_are_user_errors() -> None:
    args = build_parser().parse_args(["serve", "--http-port", "70000"])
    with pytest.raises(FinriskError, match="http_port"):
        args.handler(args)


def test_kserve_does_not_read_our_command_line() -> None:
    # kserve parses sys.argv on import; "--http_port notanumber" would make it exit.
    code = (
        "import sys; sys.argv = ['finrisk', 'serve', '--http_port', 'notanumber', '--model', 'x'];"
        "import finrisk.serving.predictor.model; print('imported')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "imported" in out.stdout


def test_the_grpc_port_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINRISK_PREDICTOR_GRPC_PORT", "0")  # 0: no gRPC server
    assert PredictorSettings().grpc_port == 0
    args = build_parser().parse_args(["serve", "--grpc-port", "9181"])
    assert args.grpc_port == 9181
