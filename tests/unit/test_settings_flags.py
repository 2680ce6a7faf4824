"""Flags derived from the settings: every bridge setting has one, typed and checked as declared."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import SecretStr

from finrisk.cli import build_parser
from finrisk.cli.settings_flags import add_flags, flag_name, given, overlaid
from finrisk.errors import FinriskError
from finrisk.serving.bridge.cli import bridge_settings
from finrisk.settings import BridgeSettings


def _bridge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_flags(parser, BridgeSettings)
    return parser


def test_every_bridge_setting_but_secrets_and_mappings_has_a_flag() -> None:
    flags = {option for action in _bridge_parser()._actions for option in action.option_strings}
    for name, info in BridgeSettings.model_fields.items():
        assert info.description, f"{name} has no description for its flag's help"
        no_flag = SecretStr in getattr(info.annotation, "__args__", (info.annotation,)) or (
            name == "kafka_options"
        )
        assert (flag_name(name) in flags) is not no_flag, name


def test_flags_take_the_declared_types_and_choices() -> None:
    args = _bridge_parser().parse_args(
        [
            "--batch-max-messages",
            "7",
            "--sink-timeout-s",
            "2.5",
            "--local-sink-path",
            "/tmp/a.sqlite",
            "--exactly-once",
            "--reasons",
            "all",
            "--risk-model",
            "",
        ]
    )
    settings = overlaid(BridgeSettings(), given(args, BridgeSettings))
    assert settings.batch_max_messages == 7 and settings.sink_timeout_s == 2.5
    assert settings.local_sink_path == Path("/tmp/a.sqlite")
    assert settings.exactly_once is True and settings.reasons == "all"
    assert settings.risk_model is None  # '' stands for none
    assert settings.group_id == BridgeSettings().group_id  # a flag not given overrides nothing
    with pytest.raises(SystemExit):
        _bridge_parser().parse_args(["--reasons", "some"])


def test_a_flag_not_given_leaves_env_and_file_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FINRISK_BRIDGE__EXACTLY_ONCE", "true")
    monkeypatch.setenv("FINRISK_BRIDGE__GROUP_ID", "from-env")
    settings = bridge_settings(build_parser().parse_args(["bridge", "--workers", "2"]))
    assert settings.bridge.exactly_once is True and settings.bridge.group_id == "from-env"
    assert settings.bridge.workers == 2
    settings = bridge_settings(build_parser().parse_args(["bridge", "--no-exactly-once"]))
    assert settings.bridge.exactly_once is False


def test_a_value_out_of_bounds_is_refused_naming_its_flag() -> None:
    args = _bridge_parser().parse_args(["--max-in-flight-batches", "1", "--dedup-window-s", "-1"])
    with pytest.raises(FinriskError, match=r"--dedup-window-s: .*--max-in-flight-batches: "):
        overlaid(BridgeSettings(), given(args, BridgeSettings))
