"""The bridge's inference calls over the Open Inference Protocol's gRPC (`transport: grpc`).

Same contract as V2Client (it is one): a timeout per call, retries with backoff for what may
pass (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN), each
counted by the endpoint's circuit breaker; a refusal of the request itself (INVALID_ARGUMENT,
NOT_FOUND, ...) is RequestRejected with the HTTP status REST would have answered. Only
`infer`, the hot path, goes over gRPC: rows as raw FP64 contents, outputs read from raw
contents. Metadata and the reference profile (a finrisk REST extension) stay on REST, read
once per served version.

kserve's protobufs are imported on first use: a REST bridge never pays kserve's import.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from finrisk.serving.bridge.v2_client import (
    BadAnswer,
    InferResult,
    RequestRejected,
    Tensor,
    Transient,
    V2Client,
)
from finrisk.serving.protocol import FP64, FramingError, from_raw_contents, parameter_value

_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
# The HTTP status of the same refusal on REST (RequestRejected.status).
_HTTP_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.UNIMPLEMENTED: 501}


def _protobufs() -> tuple[Any, Any]:
    from finrisk.serving.predictor.kserve_import import kserve

    return kserve.protocol.grpc.grpc_predict_v2_pb2, kserve.protocol.grpc.grpc_predict_v2_pb2_grpc


def grpc_address(url: str, port: int) -> str:
    """host:port of the gRPC server beside the REST one at `url` (KServe serves both)."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if host.startswith("["):
        host = host[: host.index("]") + 1]
    else:
        host = host.rsplit(":", 1)[0]
    return f"{host}:{port}"


class GrpcV2Client(V2Client):
    """V2Client whose inference calls go over gRPC to `address`."""

    def __init__(self, base_url: str, address: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.address = address
        self._timeout_s = float(kwargs["timeout_s"])
        self._pb, pb_grpc = _protobufs()
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.enable_retries", 0),  # retries are ours, counted by the breaker
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()
        super().close()

    def negotiate(self) -> None:
        """Nothing to negotiate: raw contents are the protocol's own."""

    def infer(
        self,
        model: str,
        rows: npt.NDArray[np.float64],
        *,
        input_name: str,
        parameters: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> InferResult:
        if rows.ndim != 2:
            raise ValueError(f"rows must be 2-D, not shape {rows.shape}")
        pb = self._pb
        request = pb.ModelInferRequest(
            model_name=model,
            id=request_id or uuid.uuid4().hex,
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name=input_name, datatype=FP64, shape=list(rows.shape)
                )
            ],
            parameters={k: _parameter(pb, v) for k, v in (parameters or {}).items()},
            raw_input_contents=[np.ascontiguousarray(rows, dtype="<f8").tobytes()],
        )
        response = self._call_grpc(request)
        return InferResult(
            model_name=response.model_name or model,
            model_version=response.model_version or None,
            outputs=_outputs(response),
            parameters={k: parameter_value(v) for k, v in response.parameters.items()},
        )

    def _call_grpc(self, request: Any) -> Any:
        def once() -> Any:
            try:
                return self._stub.ModelInfer(request, timeout=self._timeout_s)
            except grpc.RpcError as exc:
                code = exc.code()
                if code not in _RETRYABLE:
                    raise RequestRejected(_HTTP_STATUS.get(code, 400), exc.details()) from None
                raise Transient(f"{code.name}: {exc.details()}") from None

        return self.with_retries(self.address, f"{self.address} ModelInfer", once)


def _parameter(pb: Any, value: Any) -> Any:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    return pb.InferParameter(string_param=str(value))


def _outputs(response: Any) -> dict[str, Tensor]:
    raw = list(response.raw_output_contents)
    outputs = {}
    for k, tensor in enumerate(response.outputs):
        if raw:
            try:
                values = from_raw_contents(raw[k], tensor.datatype).tolist()
            except (FramingError, IndexError) as exc:
                raise BadAnswer(f"output {tensor.name!r}: {exc}") from None
        else:
            field = tensor.contents.ListFields()
            values = list(field[0][1]) if field else []
            if tensor.datatype == "BYTES":
                values = [v.decode() for v in values]
        outputs[tensor.name] = Tensor(
            name=tensor.name,
            datatype=tensor.datatype,
            shape=tuple(int(s) for s in tensor.shape),
            data=values,
        )
    return outputs
