"""Deploy: roll the challenger pair out on the InferenceService and prove it serves, before
its promotion to champion (on failure the rollout is put back and no alias moves)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_challenger(
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
    server_dry_run: bool = False,
) -> str:
    """Patch the versions in (in-cluster credentials), wait for Ready, probe; the outcome."""
    from finrisk.deploy import ModelRef, Rollout, deploy
    from finrisk.deploy.inference_service import DETECTOR_MODEL_ENV, RISK_MODEL_ENV

    rollout = Rollout(
        name=inference_service,
        namespace=namespace,
        detector=ModelRef(detector_model_name, detector_version, DETECTOR_MODEL_ENV),
        risk=ModelRef(risk_model_name, risk_version, RISK_MODEL_ENV),
        image=predictor_image or None,
        canary_traffic_percent=canary_traffic_percent or None,
        annotations={"finrisk.io/pipeline-run-id": pipeline_run_id} if pipeline_run_id else {},
    )
    result = deploy(
        rollout,
        manifest_path=manifest.path,
        dry_run="client" if dry_run else "server" if server_dry_run else "",
        timeout_s=timeout_seconds,
    )
    manifest.metadata.update({"action": result.action, "url": result.url or ""})
    outcome = f"{result.action}: InferenceService {result.namespace}/{result.name}"
    print(outcome + (f" at {result.url}" if result.url else ""))
    return outcome
