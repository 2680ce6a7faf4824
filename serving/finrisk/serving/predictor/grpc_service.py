"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, kserve's generated
protobufs), in the predictor's process and event loop beside REST, on the same models.

Requests go through the same lookup (served.py), validation (inputs.py, via
grpc_messages.infer_document) and scoring as REST, and fail the same way, as status codes:
what REST answers 400 is INVALID_ARGUMENT with the same message, 404 NOT_FOUND, 503
UNAVAILABLE; past `max_concurrency` calls in flight gRPC itself answers RESOURCE_EXHAUSTED, as
it does for a message over `max_body_bytes`. INTERNAL is only for a fault of the predictor.
Bound to the configured host (127.0.0.1 locally); port 8081 by default, as KServe's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from finrisk.errors import FinriskError
from finrisk.serving.predictor import metrics
from finrisk.serving.predictor.grpc_messages import (
    infer_document,
    infer_response,
    pb,
    tensor_metadata,
)
from finrisk.serving.predictor.inputs import InputError
from finrisk.serving.predictor.kserve_import import kserve
from finrisk.serving.predictor.model import FinriskModel
from finrisk.serving.predictor.served import (
    FinriskRepository,
    NotReady,
    NotServed,
    model_metadata,
)

log = logging.getLogger(__name__)
PROTOCOL = "grpc"
pb_grpc = kserve.protocol.grpc.grpc_predict_v2_pb2_grpc
# The HTTP status REST answers for the same outcome: one set of labels on the request metrics.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[name-defined]
    """GRPCInferenceService over finrisk's models; the repository RPCs are not offered (no
    unload, as on REST; reload is REST's POST /v2/repository/models/<name>/load)."""

    def __init__(self, models: list[FinriskModel]) -> None:
        self.repository = FinriskRepository(models)

    def _find(self, name: str, version: str) -> FinriskModel:
        try:
            return self.repository.find(name, version)
        except NotServed as exc:
            raise Refused(grpc.StatusCode.NOT_FOUND, str(exc)) from None
        except NotReady as exc:
            raise Refused(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        models = [self.repository.get_model(name) for name in self.repository.get_models()]
        return pb.ServerReadyResponse(ready=all(model.ready for model in models))

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        found = self.repository.server_metadata()
        return pb.ServerMetadataResponse(
            name=found["name"], version=found["version"], extensions=found["extensions"]
        )

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            self._find(request.name, request.version)
        except Refused as exc:
            if exc.code != grpc.StatusCode.UNAVAILABLE:
                await context.abort(exc.code, str(exc))
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            model = self._find(request.name, request.version)
        except Refused as exc:
            await context.abort(exc.code, str(exc))
        found = model_metadata(model)
        return pb.ModelMetadataResponse(
            name=found["name"],
            versions=found["versions"],
            platform=found["platform"],
            inputs=tensor_metadata(found["inputs"]),
            outputs=tensor_metadata(found["outputs"]),
        )

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        code, message = grpc.StatusCode.OK, ""
        try:
            model = self._find(request.model_name, request.model_version)
            batch = await model.preprocess(infer_document(request))
            batch, scored = await model.predict(batch)
            return infer_response(batch.scorer, scored, batch.request_id, batch.outputs)
        except Refused as exc:
            code, message = exc.code, str(exc)
        except (InputError, kserve.errors.InvalidInput) as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except kserve.errors.ModelNotReady as exc:
            code, message = grpc.StatusCode.UNAVAILABLE, str(exc)
        except Exception:
            log.exception("gRPC inference on %s failed", request.model_name)
            code, message = (
                grpc.StatusCode.INTERNAL,
                "internal error while scoring; see the predictor log",
            )
        finally:
            name = request.model_name
            metrics.REQUESTS.labels(name, PROTOCOL, str(_HTTP_STATUS.get(code, 500))).inc()
            metrics.LATENCY.labels(name, PROTOCOL).observe(time.perf_counter() - started)
        await context.abort(code, message)


def grpc_server(
    models: list[FinriskModel],
    *,
    host: str,
    port: int,
    max_message_bytes: int,
    max_concurrency: int,
    grace_s: float = 20.0,
) -> contextlib.AbstractAsyncContextManager[int]:
    """The gRPC server as an async context: bound and serving inside (yields the bound port),
    stopped on exit, letting calls in flight finish for up to `grace_s` seconds."""

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[int]:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                # One predictor per port: a second process must fail to bind, not share it.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=max_concurrency,
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(models), server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise FinriskError(f"cannot bind gRPC to {address}: {exc}") from None
        await server.start()
        log.info("serving gRPC (Open Inference Protocol) on %s:%d", host, bound)
        try:
            yield bound
        finally:
            await server.stop(grace_s)

    return running()
