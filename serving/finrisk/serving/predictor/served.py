"""What the predictor serves, as both its protocols (REST in app.py, gRPC in grpc_service.py)
look it up and describe it: one lookup with one set of refusals, one metadata document."""

from __future__ import annotations

from typing import Any

from finrisk.serving.predictor.kserve_import import kserve
from finrisk.serving.predictor.model import FinriskModel
from finrisk.serving.protocol import BINARY_EXTENSION

PLATFORM = "finrisk-onnxruntime"


class NotServed(LookupError):
    """No such model here, or not the version served (REST 404, gRPC NOT_FOUND)."""


class NotReady(RuntimeError):
    """The model is not loaded yet (REST 503, gRPC UNAVAILABLE)."""


class FinriskRepository(kserve.model_repository.ModelRepository):  # type: ignore[name-defined]
    """kserve's model repository; `load` (the OIP repository extension) reloads from MLflow."""

    def __init__(self, models: list[FinriskModel]) -> None:
        super().__init__()
        for model in models:
            self.update(model)

    async def load(self, name: str) -> bool:
        model = self.get_model(name)
        if not isinstance(model, FinriskModel):
            raise kserve.errors.ModelNotFound(name)
        await model.reload()
        return True

    def find(self, name: str, version: str | None = None) -> FinriskModel:
        """The ready model `name`, serving `version` when one is asked for (None or "": any)."""
        model = self.get_model(name)
        if not isinstance(model, FinriskModel):
            raise NotServed(
                f"model {name!r} is not served here; models: {', '.join(self.get_models())}"
            )
        if not model.ready or model.scorer is None:
            raise NotReady(f"model {name!r} is not ready")
        if version and version != model.scorer.version:
            raise NotServed(f"model {name!r} serves version {model.scorer.version}, not {version}")
        return model

    def server_metadata(self) -> dict[str, Any]:
        """kserve's server metadata, plus the binary tensor data extension our routes read."""
        found = kserve.protocol.dataplane.DataPlane(model_registry=self).metadata()
        return {**found, "extensions": [*found["extensions"], BINARY_EXTENSION]}


def model_metadata(model: FinriskModel) -> dict[str, Any]:
    """The V2 model metadata of the version `model` serves."""
    scorer = model.scorer
    assert scorer is not None
    return {
        "name": model.name,
        "versions": [scorer.version],
        "platform": PLATFORM,
        "inputs": model.get_input_types(),
        "outputs": model.get_output_types(),
    }
