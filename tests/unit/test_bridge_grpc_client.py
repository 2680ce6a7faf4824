"""The bridge's gRPC transport: where it calls, rows out as raw FP64 and outputs back, and the
same retry and breaker discipline as REST (the live run: tests/integration/bridge/
test_grpc_transport.py)."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest

from finrisk.serving.bridge.app import v2_client
from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.breaker import CircuitBreaker
from finrisk.serving.bridge.grpc_client import GrpcV2Client, grpc_address
from finrisk.serving.bridge.v2_client import EndpointUnavailable, RequestRejected, V2Client
from finrisk.serving.predictor.grpc_messages import pb
from finrisk.serving.protocol import raw_contents
from finrisk.settings import BridgeSettings


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8081"),
        ("http://finrisk-predictor.finrisk.svc/", "finrisk-predictor.finrisk.svc:8081"),
        ("https://[::1]:8443/base", "[::1]:8081"),
    ],
)
def test_the_grpc_server_is_beside_the_rest_one(url: str, address: str) -> None:
    assert grpc_address(url, 8081) == address


def test_the_transport_setting_picks_the_client() -> None:
    assert type(v2_client(BridgeSettings(), "http://127.0.0.1:8080")) is V2Client
    config = BridgeSettings(transport="grpc", predictor_grpc_port=9181)
    client = v2_client(config, "http://127.0.0.1:8080")
    try:
        assert isinstance(client, GrpcV2Client) and client.address == "127.0.0.1:9181"
    finally:
        client.close()


class Failure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class Stub:
    """Answers ModelInfer from a script: a response, or an error to raise."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[Any] = []

    def ModelInfer(self, request: Any, timeout: float) -> Any:
        self.requests.append(request)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def _answer() -> Any:
    return pb.ModelInferResponse(
        model_name="det",
        model_version="3",
        outputs=[
            pb.ModelInferResponse.InferOutputTensor(name="score", datatype="FP64", shape=[2]),
            pb.ModelInferResponse.InferOutputTensor(name="band", datatype="BYTES", shape=[2]),
        ],
        raw_output_contents=[
            raw_contents(np.array([0.25, 0.5]), "FP64"),
            raw_contents(np.array(["LOW", "HIGH"]), "BYTES"),
        ],
        parameters={"threshold": pb.InferParameter(string_param="0.75")},
    )


def _client(stub: Stub, attempts: int = 3) -> GrpcV2Client:
    client = GrpcV2Client(
        "http://127.0.0.1:1",
        "127.0.0.1:2",
        timeout_s=1.0,
        max_attempts=attempts,
        backoff=Backoff(0.1, 1.0, jitter=False),
        breaker=CircuitBreaker(3, reset_s=5.0),
        sleep=lambda _s: None,
    )
    client._stub = stub
    return client


def test_rows_go_as_raw_fp64_and_outputs_come_back() -> None:
    stub = Stub(_answer())
    client = _client(stub)
    rows = np.array([[1.0, 2.0], [3.0, np.nan]])
    result = client.infer("det", rows, input_name="features", parameters={"reasons": 0})
    client.close()
    (sent,) = stub.requests
    assert sent.model_name == "det" and list(sent.inputs[0].shape) == [2, 2]
    assert sent.raw_input_contents[0] == rows.astype("<f8").tobytes()
    assert sent.parameters["reasons"].int64_param == 0
    assert result.model_version == "3"
    assert result.outputs["score"].data == [0.25, 0.5]
    assert result.outputs["band"].data == ["LOW", "HIGH"]
    assert float(result.parameters["threshold"]) == 0.75


def test_passing_failures_are_retried_and_refusals_are_not() -> None:
    flaky = Stub(Failure(grpc.StatusCode.UNAVAILABLE, "down"), _answer())
    client = _client(flaky)
    assert client.infer("det", np.zeros((2, 2)), input_name="features").model_version == "3"
    assert client.retries == 1
    client.close()
    refusing = Stub(Failure(grpc.StatusCode.INVALID_ARGUMENT, "row 0: NaN"), _answer())
    client = _client(refusing)
    with pytest.raises(RequestRejected) as rejected:
        client.infer("det", np.zeros((2, 2)), input_name="features")
    assert (rejected.value.status, rejected.value.message) == (400, "row 0: NaN")
    assert len(refusing.requests) == 1 and client.breaker.allow()
    client.close()


def test_an_endpoint_that_stays_down_is_unavailable() -> None:
    down = Stub(*[Failure(grpc.StatusCode.UNAVAILABLE, "connection refused")] * 3)
    client = _client(down)
    with pytest.raises(EndpointUnavailable, match="UNAVAILABLE: connection refused"):
        client.infer("det", np.zeros((1, 2)), input_name="features")
    assert len(down.requests) == 3
    client.close()
