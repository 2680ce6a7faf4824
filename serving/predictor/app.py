"""The predictor's HTTP app: kserve's endpoints, with finrisk's fast, strict routes in front.

kserve's V1/V2 routes give health, readiness, model lists, the repository extension and
Prometheus /metrics. Inference, model metadata, readiness and reload are finrisk routes
registered first (Starlette takes the first matching route):
- POST /v1/models/{name}:predict and /v2/models/{name}/infer: the body goes to the model as
  bytes (no pydantic model of the request: that alone costs ~12 ms for 1000 rows), and every
  input problem is a 400 naming the field and row; V2 also takes the binary tensor data
  extension (Inference-Header-Content-Length; raw FP64 after the JSON part), which GET /v2
  lists among the server's extensions;
- GET /v1/models/{name} and /v2/models/{name}: metadata with the registry version;
- POST /v2/repository/models/{name}/load: reload from the registry (the OIP repository
  extension's load), answering with the version served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from finrisk import __version__
from finrisk.errors import FinriskError
from finrisk.serving.predictor import metrics
from finrisk.serving.predictor.inputs import (
    BINARY_EXTENSION,
    HEADER_LENGTH_HEADER,
    InputError,
    check_content_type,
    split_body,
)
from finrisk.serving.predictor.kserve_import import kserve
from finrisk.serving.predictor.model import V1, V2, FinriskModel, RawRequest
from finrisk.serving.predictor.responses import encode, error_body

log = logging.getLogger(__name__)
JSON = "application/json"
PLATFORM = "finrisk-onnxruntime"


class FinriskRepository(kserve.model_repository.ModelRepository):  # type: ignore[name-defined]
    """kserve's model repository; `load` (the OIP repository extension) reloads from MLflow."""

    def __init__(self, models: Iterable[FinriskModel]) -> None:
        super().__init__()
        for model in models:
            self.update(model)

    async def load(self, name: str) -> bool:
        model = self.get_model(name)
        if not isinstance(model, FinriskModel):
            raise kserve.errors.ModelNotFound(name)
        await model.reload()
        return True


def _error(status: int, message: str) -> Response:
    return Response(content=error_body(message), status_code=status, media_type=JSON)


def _json(body: dict[str, Any]) -> Response:
    return Response(content=encode(body), media_type=JSON)


async def watch_aliases(models: list[FinriskModel], interval: float) -> None:
    """Reload each alias-following model whose alias has moved, every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        for model in models:
            if model.ref.alias is None:
                continue
            try:
                await model.reload()
            except (FinriskError, OSError) as exc:
                log.warning("checking %s for a new version failed: %s", model.name, exc)
            except Exception:  # a watcher that dies silently would freeze the served version
                log.exception("checking %s for a new version failed", model.name)


def build_app(
    models: list[FinriskModel], *, reload_interval: float = 0.0, max_body_bytes: int = 64 << 20
) -> FastAPI:
    repository = FinriskRepository(models)
    dataplane = kserve.protocol.dataplane.DataPlane(model_registry=repository)
    extension = kserve.protocol.model_repository_extension.ModelRepositoryExtension(
        model_registry=repository
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = None
        if reload_interval > 0:
            watcher = asyncio.create_task(watch_aliases(models, reload_interval))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = FastAPI(
        title="finrisk predictor",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )

    def lookup(name: str) -> FinriskModel | Response:
        model = repository.get_model(name)
        if not isinstance(model, FinriskModel):
            return _error(
                404,
                f"model {name!r} is not served here; models: {', '.join(repository.get_models())}",
            )
        if not model.ready or model.scorer is None:
            return _error(503, f"model {name!r} is not ready")
        return model

    async def infer(
        request: Request, name: str, protocol: str, version: str | None = None
    ) -> Response:
        started = time.perf_counter()
        found = lookup(name)
        if isinstance(found, Response):
            metrics.REQUESTS.labels(name, protocol, str(found.status_code)).inc()
            return found
        model = found
        served = model.scorer.version if model.scorer else ""
        status = 200
        try:
            header_length = request.headers.get(HEADER_LENGTH_HEADER)
            if header_length is not None and protocol != V2:
                raise InputError("binary tensor data is a V2 extension; send V1 bodies as JSON")
            check_content_type(
                request.headers.get("content-type"), binary=header_length is not None
            )
            if version is not None and version != served:
                status = 404
                return _error(404, f"model {name!r} serves version {served}, not {version}")
            body = await request.body()
            if len(body) > max_body_bytes:
                status = 413
                return _error(413, f"request body of {len(body)} bytes exceeds {max_body_bytes}")
            json_part, binary = split_body(body, header_length)
            result, _ = await model(RawRequest(protocol, json_part, binary), None)
        except (InputError, kserve.errors.InvalidInput) as exc:
            status = 400
            return _error(400, str(exc))
        except kserve.errors.ModelNotReady as exc:
            status = 503
            return _error(503, str(exc))
        except Exception:
            status = 500
            log.exception("inference on %s failed", name)
            return _error(500, "internal error while scoring; see the predictor log")
        finally:
            metrics.REQUESTS.labels(name, protocol, str(status)).inc()
            metrics.LATENCY.labels(name, protocol).observe(time.perf_counter() - started)
        return Response(content=result, media_type=JSON)

    async def v1_predict(request: Request, model_name: str) -> Response:
        return await infer(request, model_name, V1)

    async def v2_infer(request: Request, model_name: str) -> Response:
        return await infer(request, model_name, V2)

    async def v2_infer_version(request: Request, model_name: str, model_version: str) -> Response:
        return await infer(request, model_name, V2, model_version)

    def metadata(model: FinriskModel) -> dict[str, Any]:
        scorer = model.scorer
        assert scorer is not None
        return {
            "name": model.name,
            "versions": [scorer.version],
            "platform": PLATFORM,
            "inputs": model.get_input_types(),
            "outputs": model.get_output_types(),
        }

    async def v2_metadata(model_name: str) -> Response:
        found = lookup(model_name)
        if isinstance(found, Response):
            return found
        return _json(metadata(found))

    async def v1_metadata(model_name: str) -> Response:
        found = lookup(model_name)
        if isinstance(found, Response):
            return found
        scorer = found.scorer
        assert scorer is not None
        return _json(
            {
                **metadata(found),
                "ready": True,
                "kind": scorer.kind,
                "version": scorer.version,
                "source": found.ref.uri,
                "feature_order": list(scorer.feature_names),
                **scorer.decision(),
            }
        )

    async def reload(model_name: str) -> Response:
        model = repository.get_model(model_name)
        if not isinstance(model, FinriskModel):
            return _error(404, f"model {model_name!r} is not served here")
        try:
            result = await model.reload()
        except (FinriskError, OSError) as exc:
            return _error(
                503, f"reloading {model_name!r} failed, still serving the previous version: {exc}"
            )
        return _json({"load": True, **result.to_dict()})

    async def server_metadata() -> Response:
        # kserve's answer, plus the binary tensor data extension our infer routes read.
        found = dataplane.metadata()
        return _json({**found, "extensions": [*found["extensions"], BINARY_EXTENSION]})

    async def server_ready() -> Response:
        not_ready = [m.name for m in models if not m.ready]
        if not_ready:
            return _error(503, f"models not ready: {', '.join(not_ready)}")
        return _json({"ready": True})

    app.add_api_route("/v1/models/{model_name}:predict", v1_predict, methods=["POST"])
    app.add_api_route("/v2/models/{model_name}/infer", v2_infer, methods=["POST"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/infer", v2_infer_version, methods=["POST"]
    )
    app.add_api_route("/v1/models/{model_name}", v1_metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}", v2_metadata, methods=["GET"])
    app.add_api_route("/v2/repository/models/{model_name}/load", reload, methods=["POST"])
    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"])
    app.add_api_route("/v2", server_metadata, methods=["GET"])

    # kserve's own endpoints for everything else.
    root = kserve.protocol.rest.server
    app.add_api_route("/", dataplane.live, methods=["GET"])
    app.add_api_route("/metrics", root.metrics_handler, methods=["GET"])
    kserve.protocol.rest.v1_endpoints.register_v1_endpoints(app, dataplane, extension)
    kserve.protocol.rest.v2_endpoints.register_v2_endpoints(app, dataplane, extension)
    errors = kserve.errors
    for exc_type, handler in (
        (errors.InvalidInput, errors.invalid_input_handler),
        (errors.InferenceError, errors.inference_error_handler),
        (errors.ModelNotFound, errors.model_not_found_handler),
        (errors.ModelNotReady, errors.model_not_ready_handler),
        (NotImplementedError, errors.not_implemented_error_handler),
        (errors.UnsupportedProtocol, errors.unsupported_protocol_error_handler),
        (errors.ServerNotLive, errors.server_not_live_handler),
        (errors.ServerNotReady, errors.server_not_ready_handler),
        (Exception, errors.generic_exception_handler),
    ):
        app.add_exception_handler(exc_type, handler)

    async def validation_error(request: Request, exc: Exception) -> Response:
        # FastAPI answers a body its pydantic model rejects with 422; the protocol says 400.
        return _error(400, f"invalid request: {exc}")

    app.add_exception_handler(RequestValidationError, validation_error)
    return app
