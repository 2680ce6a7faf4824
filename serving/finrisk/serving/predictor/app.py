"""The predictor's HTTP app: every route it answers, each with the statuses it can answer.

KServe's V1 and Open Inference Protocol (V2) REST routes, written here rather than taken from
kserve's routers, so that each documents its statuses in /openapi.json and none answers 5xx
to a client's mistake:
- POST /v1/models/{name}:predict and /v2/models/{name}/infer (and .../versions/{v}/infer):
  the body goes to the model as bytes (no pydantic model of the request: that alone costs
  ~12 ms for 1000 rows), and every input problem is a 400 naming the field and row. A body
  without Content-Type is JSON, as the protocol's clients send it (Triton's among them);
  with Inference-Header-Content-Length it is the binary tensor data extension (raw FP64
  after the JSON part), which GET /v2 lists. Limits: a declared Content-Length over
  `max_body_bytes` is refused (413) before a byte is read, a streamed body as soon as it
  passes it; JSON nested past the parser's depth is a 400; past `max_concurrency` requests
  in flight the answer is 503 with Retry-After.
- GET /v2/models/{name}[/versions/{v}][/ready] and GET /v1/models/{name}: metadata and
  readiness of the served registry version; another version is a 404.
- POST /v2/repository/models/{name}/load: reload from the registry (the OIP repository
  extension's load), answering with the version served. There is no unload: a model can't
  be taken away by a request.
- health (/, /v2/health/live, /v2/health/ready), lists (/v1/models, /v2/models), server
  metadata (/v2) and Prometheus /metrics (text).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from finrisk.errors import FinriskError
from finrisk.serving.predictor import metrics
from finrisk.serving.predictor.inputs import (
    InputError,
    UnsupportedMediaType,
    check_content_type,
    split_body,
)
from finrisk.serving.predictor.kserve_import import kserve
from finrisk.serving.predictor.model import V1, V2, FinriskModel, RawRequest
from finrisk.serving.predictor.responses import encode, error_body
from finrisk.serving.predictor.served import FinriskRepository, NotReady, NotServed, model_metadata
from finrisk.serving.protocol import HEADER_LENGTH_HEADER, PROFILE_PATH
from finrisk.version import __version__

log = logging.getLogger(__name__)
JSON = "application/json"


class ErrorBody(BaseModel):
    """Every error answer: what is wrong, naming the field, row, model or limit."""

    error: str


_DESCRIPTIONS = {
    400: "the request is malformed: the error names the field and row",
    404: "no such model, or not the version served",
    413: "the body is larger than the predictor takes",
    415: "a Content-Type other than application/json (or octet-stream for binary tensors)",
    503: "the model is not ready, or the predictor is at its limit of requests in flight",
}


def _statuses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the error statuses a route can answer."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=error_body(message), status_code=status, media_type=JSON, headers=headers
    )


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (BodyTooLarge) by its declared length before reading, or as soon as
    a streamed one passes `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InputError(
                f"content-length must be a number of bytes, got {declared!r}"
            ) from None
        if size > limit:
            raise BodyTooLarge(f"request body of {size} bytes exceeds {limit}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# Request bodies as the protocols define them (documented only: the routes parse bytes).
_V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "datatype": {"type": "string"},
                    "data": {"type": "array"},
                    "parameters": {"type": "object"},
                },
            },
        },
        "outputs": {"type": "array", "items": {"type": "object"}},
    },
}
_V1_REQUEST = {
    "type": "object",
    "required": ["instances"],
    "properties": {"instances": {"type": "array"}, "parameters": {"type": "object"}},
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": schema}, "application/octet-stream": {}},
        }
    }


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
    models: list[FinriskModel],
    *,
    reload_interval: float = 0.0,
    max_body_bytes: int = 64 << 20,
    max_concurrency: int = 64,
    companions: Sequence[Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = (),
) -> FastAPI:
    repository = FinriskRepository(models)
    in_flight = 0

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = None
        if reload_interval > 0:
            watcher = asyncio.create_task(watch_aliases(models, reload_interval))
        try:
            async with contextlib.AsyncExitStack() as stack:
                # Servers beside this one in the same event loop (gRPC): started with the app,
                # and stopped while uvicorn shuts down, before it re-raises the signal.
                for companion in companions:
                    await stack.enter_async_context(companion())
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

    def lookup(name: str, version: str | None = None) -> FinriskModel | Response:
        try:
            return repository.find(name, version)
        except NotServed as exc:
            return _error(404, str(exc))
        except NotReady as exc:
            return _error(503, str(exc))

    async def infer(
        request: Request, name: str, protocol: str, version: str | None = None
    ) -> Response:
        nonlocal in_flight
        started = time.perf_counter()
        found = lookup(name, version)
        if isinstance(found, Response):
            metrics.REQUESTS.labels(name, protocol, str(found.status_code)).inc()
            return found
        model = found
        if in_flight >= max_concurrency:
            metrics.REQUESTS.labels(name, protocol, "503").inc()
            return _error(
                503,
                f"{in_flight} requests in flight, the limit: try again shortly",
                headers={"Retry-After": "1"},
            )
        in_flight += 1
        status = 200
        try:
            header_length = request.headers.get(HEADER_LENGTH_HEADER)
            if header_length is not None and protocol != V2:
                raise InputError("binary tensor data is a V2 extension; send V1 bodies as JSON")
            check_content_type(
                request.headers.get("content-type"), binary=header_length is not None
            )
            body = await _read_body(request, max_body_bytes)
            json_part, binary = split_body(body, header_length)
            result, _ = await model(RawRequest(protocol, json_part, binary), None)
        except BodyTooLarge as exc:
            status = 413
            return _error(413, str(exc))
        except UnsupportedMediaType as exc:
            status = 415
            return _error(415, str(exc))
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
            in_flight -= 1
            metrics.REQUESTS.labels(name, protocol, str(status)).inc()
            metrics.LATENCY.labels(name, protocol).observe(time.perf_counter() - started)
        return Response(content=result, media_type=JSON)

    async def v1_predict(request: Request, model_name: str) -> Response:
        return await infer(request, model_name, V1)

    async def v2_infer(request: Request, model_name: str) -> Response:
        return await infer(request, model_name, V2)

    async def v2_infer_version(request: Request, model_name: str, model_version: str) -> Response:
        return await infer(request, model_name, V2, model_version)

    async def v2_metadata(model_name: str) -> Response:
        found = lookup(model_name)
        return found if isinstance(found, Response) else _json(model_metadata(found))

    async def v2_version_metadata(model_name: str, model_version: str) -> Response:
        found = lookup(model_name, model_version)
        return found if isinstance(found, Response) else _json(model_metadata(found))

    async def v2_model_ready(model_name: str) -> Response:
        found = lookup(model_name)
        return found if isinstance(found, Response) else _json({"name": model_name, "ready": True})

    async def v2_version_ready(model_name: str, model_version: str) -> Response:
        found = lookup(model_name, model_version)
        return found if isinstance(found, Response) else _json({"name": model_name, "ready": True})

    async def v2_version_profile(model_name: str, model_version: str) -> Response:
        # The reference profile of the served version's training data (finrisk.monitoring):
        # what the bridge compares live traffic with. An extension of the protocol's routes.
        found = lookup(model_name, model_version)
        if isinstance(found, Response):
            return found
        assert found.scorer is not None
        profile = found.scorer.loaded.profile
        if profile is None:
            return _error(
                404,
                f"model {model_name!r} version {model_version} has no reference profile "
                "(registered before finrisk logged profiles)",
            )
        return _json({"name": model_name, "version": model_version, "profile": profile})

    async def v1_metadata(model_name: str) -> Response:
        found = lookup(model_name)
        if isinstance(found, Response):
            return found
        scorer = found.scorer
        assert scorer is not None
        return _json(
            {
                **model_metadata(found),
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
        return _json(repository.server_metadata())

    async def server_ready() -> Response:
        not_ready = [m.name for m in models if not m.ready]
        if not_ready:
            return _error(503, f"models not ready: {', '.join(not_ready)}")
        return _json({"ready": True})

    async def server_live() -> Response:
        return _json({"live": True})

    async def alive() -> Response:
        return _json({"status": "alive"})

    async def model_list() -> Response:
        return _json({"models": list(repository.get_models())})

    async def prometheus() -> Response:
        # The process's registry: finrisk's metrics and kserve's stage histograms, as text.
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    infer_errors = _statuses(400, 404, 413, 415, 503)
    read_errors = _statuses(404, 503)
    for path, endpoint, method, responses, extra in (
        ("/v1/models/{model_name}:predict", v1_predict, "POST", infer_errors, _body(_V1_REQUEST)),
        ("/v2/models/{model_name}/infer", v2_infer, "POST", infer_errors, _body(_V2_REQUEST)),
        (
            "/v2/models/{model_name}/versions/{model_version}/infer",
            v2_infer_version,
            "POST",
            infer_errors,
            _body(_V2_REQUEST),
        ),
        ("/v1/models/{model_name}", v1_metadata, "GET", read_errors, None),
        ("/v2/models/{model_name}", v2_metadata, "GET", read_errors, None),
        ("/v2/models/{model_name}/ready", v2_model_ready, "GET", read_errors, None),
        (
            "/v2/models/{model_name}/versions/{model_version}",
            v2_version_metadata,
            "GET",
            read_errors,
            None,
        ),
        (
            "/v2/models/{model_name}/versions/{model_version}/ready",
            v2_version_ready,
            "GET",
            read_errors,
            None,
        ),
        (
            PROFILE_PATH.format(model="{model_name}", version="{model_version}"),
            v2_version_profile,
            "GET",
            read_errors,
            None,
        ),
        ("/v2/repository/models/{model_name}/load", reload, "POST", read_errors, None),
        ("/v2/health/ready", server_ready, "GET", _statuses(503), None),
        ("/v2/health/live", server_live, "GET", {}, None),
        ("/v2", server_metadata, "GET", {}, None),
        ("/v2/models", model_list, "GET", {}, None),
        ("/v1/models", model_list, "GET", {}, None),
        ("/", alive, "GET", {}, None),
    ):
        app.add_api_route(
            path,
            endpoint,
            methods=[method],
            responses={200: {"content": {JSON: {}}}, **responses},
            openapi_extra=extra,
        )
    app.add_api_route(
        "/metrics",
        prometheus,
        methods=["GET"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}}},
    )

    async def validation_error(request: Request, exc: Exception) -> Response:
        # FastAPI answers a body its pydantic model rejects with 422; the protocol says 400.
        return _error(400, f"invalid request: {exc}")

    app.add_exception_handler(RequestValidationError, validation_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI lists a 422 on every route with parameters; this app answers 400 instead.
        schema = generate()
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
