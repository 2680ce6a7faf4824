"""Register: challenger versions in MLflow (always), alias `champion` only past the gate."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_challenger(
    detector_model: Input[Model],
    risk_model: Input[Model],
    evaluation: Input[Artifact],
    data_fingerprint: str,
    gate_action: str,
    gate_reason: str,
    pipeline_run_id: str,
    detector_model_name: str,
    risk_model_name: str,
    experiment: str,
    pipeline_run_name: str = "",
) -> NamedTuple("RegisteredVersions", [("detector_version", str), ("risk_version", str)]):  # type: ignore[valid-type]  # KFP output syntax
    """Log both models with metrics and provenance tags; alias `challenger` on the versions."""
    from collections import namedtuple

    from finrisk.retraining.registration import Provenance, read_json, register_challenger

    versions = register_challenger(
        {"detector": detector_model.path, "risk": risk_model.path},
        read_json(evaluation.path),
        Provenance(
            data_fingerprint=data_fingerprint,
            pipeline_run_id=pipeline_run_id,
            pipeline_run_name=pipeline_run_name,
            gate_action=gate_action,
            gate_reason=gate_reason,
        ),
        model_names={"detector": detector_model_name, "risk": risk_model_name},
        experiment=experiment,
    )
    print(f"registered challenger versions {versions}")
    RegisteredVersions = namedtuple("RegisteredVersions", ["detector_version", "risk_version"])
    return RegisteredVersions(versions["detector"], versions["risk"])


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote_champion(
    detector_version: str,
    risk_version: str,
    detector_model_name: str,
    risk_model_name: str,
) -> str:
    """Point alias `champion` at the challenger versions."""
    from finrisk.retraining.registration import promote

    promote(
        {"detector": detector_version, "risk": risk_version},
        model_names={"detector": detector_model_name, "risk": risk_model_name},
    )
    message = (
        f"champion: {detector_model_name} v{detector_version}, {risk_model_name} v{risk_version}"
    )
    print(message)
    return message


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def keep_champion(reason: str, decision: Output[Markdown]) -> str:
    """End the run cleanly, saying why the champion stays."""
    with open(decision.path, "w", encoding="utf-8") as out:
        out.write(f"# The champion stays\n\n{reason}\n")
    print(reason)
    return reason


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def shadow_challenger(reason: str, decision: Output[Markdown]) -> str:
    """End the run with the challenger shadowed: registered as `challenger` (a predictor serving
    that alias reloads it), promoted by `finrisk monitor` once live traffic agrees."""
    with open(decision.path, "w", encoding="utf-8") as out:
        out.write(f"# The challenger is shadowed\n\n{reason}\n")
    print(reason)
    return reason
