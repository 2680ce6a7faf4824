"""`finrisk pipeline` argument handling: typed -p parameters, clear errors, the parameter list."""

from __future__ import annotations

import pytest

from finrisk.cli import main
from finrisk.errors import FinriskError
from finrisk.pipelines.cli import parse_params
from finrisk.pipelines.local import LOCAL_DEFAULTS, pipeline_parameters


def test_parameters_are_typed_by_the_pipeline_signature() -> None:
    params = parse_params(
        [
            "synthetic_users=50",
            "min_improvement=0.02",
            "deploy_dry_run=yes",
            "data_uri=/data/x=y.csv",
            'detector_params={"max_iter": 10}',
        ]
    )
    assert params == {
        "synthetic_users": 50,
        "min_improvement": 0.02,
        "deploy_dry_run": True,
        "data_uri": "/data/x=y.csv",
        "detector_params": '{"max_iter": 10}',
    }


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("synthetic_users=many", "synthetic_users takes a int"),
        ("deploy_dry_run=maybe", "deploy_dry_run takes a bool"),
        ("no_such=1", "-p no_such: not a pipeline parameter"),
        ("seed", "expected NAME=VALUE"),
    ],
)
def test_bad_parameters_are_named(item: str, message: str) -> None:
    with pytest.raises(FinriskError, match=message):
        parse_params([item])


def test_cli_reports_bad_parameters_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run", "--local", "-p", "seed=abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finrisk: error: -p seed='abc'") and "Traceback" not in err


def test_params_lists_every_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "params"]) == 0
    out = capsys.readouterr().out
    for name in pipeline_parameters():
        assert name in out
    assert set(LOCAL_DEFAULTS) <= set(pipeline_parameters())


def test_pipeline_defaults_name_the_registry_models() -> None:
    from finrisk.registry.names import DEFAULT_MODEL_NAMES

    params = pipeline_parameters()
    assert params["detector_model_name"].default == DEFAULT_MODEL_NAMES["detector"]
    assert params["risk_model_name"].default == DEFAULT_MODEL_NAMES["risk"]
