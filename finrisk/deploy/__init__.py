"""Rolling a challenger pair out to KServe: what changes on the InferenceService, applying it,
proving the new versions serve, or putting it back."""

from finrisk.deploy.apply import DeployResult, deploy
from finrisk.deploy.inference_service import ModelRef, Rollout

__all__ = ["DeployResult", "ModelRef", "Rollout", "deploy"]
