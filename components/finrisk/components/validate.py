"""Validate: the schema checks; a failing report ends the run through `fail_run`."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_data(
    raw_data: Input[Dataset],
    dataset: Output[Dataset],
    report: Output[Markdown],
    report_json: Output[Artifact],
) -> NamedTuple("ValidationOutputs", [("passed", bool), ("summary", str), ("fingerprint", str)]):  # type: ignore[valid-type]  # KFP output syntax
    """Check both tables; when they pass, write the canonical dataset and its fingerprint."""
    from collections import namedtuple

    from finrisk.retraining.data import validate, write_report

    outcome = validate(raw_data.path, dataset.path)
    write_report(outcome, report.path, report_json.path)
    dataset.metadata.update({"passed": outcome.passed, "fingerprint": outcome.fingerprint})
    print(outcome.to_markdown())
    ValidationOutputs = namedtuple("ValidationOutputs", ["passed", "summary", "fingerprint"])
    return ValidationOutputs(outcome.passed, outcome.summary, outcome.fingerprint)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def fail_run(reason: str):
    """Fail the run with `reason` (the validation report stays attached to the validate task)."""
    raise SystemExit(f"finrisk: the run stops: {reason}")
