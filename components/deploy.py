"""Deploy: create or patch the KServe InferenceService for the champion, or write it (dry run)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_champion(
    detector_version: str,
    risk_version: str,
    manifest: Output[Artifact],
    detector_model_name: str,
    risk_model_name: str,
    pipeline_run_id: str = "",
    inference_service: str = "finrisk",
    namespace: str = "finrisk",
    predictor_image: str = "",
    canary_traffic_percent: int = 0,
    timeout_seconds: int = 600,
    dry_run: bool = False,
) -> str:
    """Roll the champion out (in-cluster credentials) and wait for Ready; returns the outcome."""
    from finrisk.deploy import deploy
    from finrisk.deploy.inference_service import (
        DEFAULT_PREDICTOR_IMAGE,
        DETECTOR_MODEL_ENV,
        RISK_MODEL_ENV,
        ModelRef,
        PredictorConfig,
        inference_service_manifest,
    )

    config = PredictorConfig(
        name=inference_service,
        namespace=namespace,
        detector=ModelRef(detector_model_name, detector_version, DETECTOR_MODEL_ENV),
        risk=ModelRef(risk_model_name, risk_version, RISK_MODEL_ENV),
        image=predictor_image or DEFAULT_PREDICTOR_IMAGE,
        canary_traffic_percent=canary_traffic_percent or None,
        annotations={"finrisk.io/pipeline-run-id": pipeline_run_id} if pipeline_run_id else {},
    )
    result = deploy(
        inference_service_manifest(config),
        dry_run=dry_run,
        manifest_path=manifest.path,
        timeout_s=timeout_seconds,
    )
    manifest.metadata.update({"action": result.action, "url": result.url or ""})
    outcome = f"{result.action} InferenceService {result.namespace}/{result.name}"
    print(outcome + (f" at {result.url}" if result.url else ""))
    return outcome
