"""The V2 client's timeouts, retries, backoff and circuit breaker, over a scripted transport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import orjson
import pytest

from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.breaker import BreakerState, CircuitBreaker
from finrisk.serving.bridge.v2_client import (
    BadAnswer,
    EndpointUnavailable,
    RequestRejected,
    V2Client,
    column,
)

Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def ok(request: httpx.Request) -> httpx.Response:
    body = orjson.loads(request.content)
    n = body["inputs"][0]["shape"][0]
    return httpx.Response(
        200,
        json={
            "model_name": "det",
            "model_version": "7",
            "id": body["id"],
            "outputs": [
                {"name": "anomaly_score", "datatype": "FP64", "shape": [n], "data": [0.5] * n},
                {"name": "is_anomaly", "datatype": "BOOL", "shape": [n], "data": [False] * n},
            ],
        },
    )


class Script:
    """Answers requests from a list of handlers (the last one repeats), counting calls."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.handlers.pop(0) if len(self.handlers) > 1 else self.handlers[0]
        return handler(request)


def status(code: int, message: str = "nope") -> Handler:
    return lambda request: httpx.Response(code, json={"error": message})


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def client(script: Script, clock: Clock, attempts: int = 3, threshold: int = 3) -> V2Client:
    return V2Client(
        "http://predictor.test",
        timeout_s=1.0,
        max_attempts=attempts,
        backoff=Backoff(0.1, 1.0, jitter=False),
        breaker=CircuitBreaker(threshold, reset_s=5.0, clock=clock),
        sleep=clock.sleep,
        transport=httpx.MockTransport(script),
    )


ROWS = np.arange(6, dtype=np.float64).reshape(3, 2)


def test_one_2d_fp64_tensor_goes_out_and_outputs_come_back() -> None:
    script, clock = Script(ok), Clock()
    result = client(script, clock).infer("det", ROWS, input_name="features")
    (request,) = script.requests
    assert request.url.path == "/v2/models/det/infer"
    assert request.headers["content-type"] == "application/json"
    sent = orjson.loads(request.content)["inputs"]
    assert sent == [
        {"name": "features", "shape": [3, 2], "datatype": "FP64", "data": [0, 1, 2, 3, 4, 5]}
    ]
    assert result.model_version == "7"
    assert list(column(result, "anomaly_score", 3)) == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("failure", [status(503), status(500), status(429), refused, timed_out])
def test_passing_failures_are_retried_with_backoff(failure: Handler) -> None:
    script, clock = Script(failure, failure, ok), Clock()
    v2 = client(script, clock)
    v2.infer("det", ROWS, input_name="x")
    assert len(script.requests) == 3
    assert clock.now == pytest.approx(0.1 + 0.2)
    assert v2.breaker.state is BreakerState.CLOSED


def test_a_bad_request_is_neither_retried_nor_held_against_the_endpoint() -> None:
    script, clock = Script(status(400, "row 2: feature amount is NaN")), Clock()
    v2 = client(script, clock, threshold=1)
    with pytest.raises(RequestRejected, match="row 2: feature amount is NaN") as caught:
        v2.infer("det", ROWS, input_name="x")
    assert caught.value.status == 400
    assert len(script.requests) == 1
    assert v2.breaker.state is BreakerState.CLOSED


def test_an_endpoint_that_stays_down_opens_the_circuit_and_later_calls_fail_fast() -> None:
    script, clock = Script(refused), Clock()
    v2 = client(script, clock, attempts=5, threshold=3)
    with pytest.raises(EndpointUnavailable, match="circuit open"):
        v2.infer("det", ROWS, input_name="x")
    assert len(script.requests) == 3  # the breaker stopped the retries at its threshold
    with pytest.raises(EndpointUnavailable, match="circuit open"):
        v2.infer("det", ROWS, input_name="x")
    assert len(script.requests) == 3  # no request while open


def test_after_the_reset_time_one_probe_goes_out_and_success_closes_the_circuit() -> None:
    script, clock = Script(refused, refused, ok), Clock()
    v2 = client(script, clock, attempts=2, threshold=2)
    with pytest.raises(EndpointUnavailable):
        v2.infer("det", ROWS, input_name="x")
    assert v2.breaker.state is BreakerState.OPEN
    clock.now += 5.0
    v2.infer("det", ROWS, input_name="x")
    assert v2.breaker.state is BreakerState.CLOSED
    assert len(script.requests) == 3


def test_answers_that_break_the_contract_are_bad_answers() -> None:
    def wrong_length(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"model_name": "det", "outputs": [{"name": "anomaly_score", "data": [1.0]}]},
        )

    script, clock = Script(wrong_length), Clock()
    result = client(script, clock).infer("det", ROWS, input_name="x")
    with pytest.raises(BadAnswer, match="1 values for 3 rows"):
        column(result, "anomaly_score", 3)
    with pytest.raises(BadAnswer, match="no output 'is_anomaly'"):
        column(result, "is_anomaly", 3)
    script2 = Script(lambda request: httpx.Response(200, content=b"<html>"))
    with pytest.raises(BadAnswer, match="not JSON"):
        client(script2, clock).infer("det", ROWS, input_name="x")


def lists_binary(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"extensions": ["binary_tensor_data"]})


def ok_binary(request: httpx.Request) -> httpx.Response:
    length = int(request.headers["inference-header-content-length"])
    return ok(httpx.Request("POST", request.url, content=request.content[:length]))


@pytest.mark.parametrize(
    ("answer", "binary"),
    [
        (lists_binary, True),
        (lambda r: httpx.Response(200, json={"extensions": ["model_repository_extension"]}), False),
        (status(404), False),  # a server without server metadata: JSON
    ],
)
def test_binary_tensors_only_when_the_server_lists_them(answer: Handler, binary: bool) -> None:
    script, clock = Script(answer), Clock()
    v2 = client(script, clock)
    v2.negotiate()
    assert v2.binary is binary
    if binary:
        script.handlers = [ok_binary]
        v2.infer("det", ROWS, input_name="features")
        request = script.requests[-1]
        length = int(request.headers["inference-header-content-length"])
        assert request.headers["content-type"] == "application/octet-stream"
        (sent,) = orjson.loads(request.content[:length])["inputs"]
        assert sent["parameters"] == {"binary_data_size": ROWS.nbytes} and "data" not in sent
        assert np.frombuffer(request.content[length:], "<f8").tolist() == ROWS.ravel().tolist()


def test_an_unavailable_server_leaves_the_choice_for_later() -> None:
    script, clock = Script(status(503)), Clock()
    v2 = client(script, clock)
    with pytest.raises(EndpointUnavailable):
        v2.negotiate()
    assert v2.binary is False


def test_a_server_that_stops_reading_binary_tensors_gets_json() -> None:
    def json_only(request: httpx.Request) -> httpx.Response:
        if "inference-header-content-length" in request.headers:
            return httpx.Response(400, json={"error": "content-type must be application/json"})
        return ok(request)

    script, clock = Script(lists_binary, json_only), Clock()
    v2 = client(script, clock)
    v2.negotiate()
    result = v2.infer("det", ROWS, input_name="features")
    assert result.model_version == "7" and v2.binary is False
    v2.infer("det", ROWS, input_name="features")
    assert len(script.requests) == 4  # metadata, binary (rejected), JSON, JSON


def test_rows_rejected_in_both_encodings_are_rejected_and_binary_stays() -> None:
    script, clock = Script(lists_binary, status(400, "row 2: bad")), Clock()
    v2 = client(script, clock)
    v2.negotiate()
    with pytest.raises(RequestRejected, match="row 2: bad"):
        v2.infer("det", ROWS, input_name="features")
    assert v2.binary is True
