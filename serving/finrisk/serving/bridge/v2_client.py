"""A client for the Open Inference Protocol (V2) REST API, hardened for a streaming consumer.

Each call has a timeout; failures that may pass (connection refused or reset, timeouts, 5xx,
408, 429) are retried with backoff, and each counts towards the endpoint's circuit breaker.
While the breaker is open calls fail at once with `EndpointUnavailable`, which the bridge
answers by pausing consumption. A 4xx answer is the request's fault: `RequestRejected`,
neither retried nor counted against the endpoint.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
import orjson

from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.breaker import CircuitBreaker
from finrisk.serving.protocol import (
    BINARY_EXTENSION,
    FP64,
    JSON_MEDIA_TYPE,
    PROFILE_PATH,
    binary_request,
)

log = logging.getLogger("finrisk.bridge")
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_JSON = {"content-type": JSON_MEDIA_TYPE}


T = TypeVar("T")


class EndpointUnavailable(Exception):
    """The endpoint is down (or its circuit is open): try again later, drop nothing."""


class BadAnswer(EndpointUnavailable):
    """The endpoint answered, but not what this bridge expects (a model or version mismatch)."""


class Transient(Exception):
    """A failed call that may pass by itself (unreachable, timed out, overloaded): retried."""


class RequestRejected(Exception):
    """The endpoint answered 4xx: this request cannot succeed as it is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]


@dataclass(frozen=True)
class InferResult:
    model_name: str
    model_version: str | None
    outputs: dict[str, Tensor]
    parameters: dict[str, Any]

    def output(self, name: str) -> Tensor:
        try:
            return self.outputs[name]
        except KeyError:
            raise BadAnswer(
                f"model {self.model_name} returned no output {name!r} ({sorted(self.outputs)})"
            ) from None


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: tuple[str, ...]
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]


class V2Client:
    """Calls one V2 endpoint (a base URL serving one or more models)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        max_attempts: int,
        backoff: Backoff,
        breaker: CircuitBreaker,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.binary = False  # send rows as binary tensor data (see `negotiate`)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.breaker = breaker
        self._sleep = sleep
        # One keep-alive connection pool; a call that outlives the timeout is abandoned.
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            transport=transport,
        )
        self.retries = 0

    def close(self) -> None:
        self._http.close()

    def infer(
        self,
        model: str,
        rows: npt.NDArray[np.float64],
        *,
        input_name: str,
        parameters: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> InferResult:
        """Send `rows` (n x features, float64) as one 2-D FP64 tensor; return the outputs."""
        if rows.ndim != 2:
            raise ValueError(f"rows must be 2-D, not shape {rows.shape}")
        sent: dict[str, Any] = {"name": input_name, "shape": list(rows.shape), "datatype": FP64}
        request: dict[str, Any] = {"id": request_id or uuid.uuid4().hex, "inputs": [sent]}
        if parameters:
            request["parameters"] = dict(parameters)
        values = np.ascontiguousarray(rows, dtype=np.float64)
        if self.binary:
            # The binary tensor data extension, when the server lists it in its metadata (GET
            # /v2): raw FP64 after the JSON part costs both ends far less than JSON numbers.
            body, headers = binary_request(request, sent, values)
        else:
            sent["data"] = values.ravel()
            body = orjson.dumps(request, option=orjson.OPT_SERIALIZE_NUMPY)
            headers = _JSON
        try:
            document = self._call("POST", f"/v2/models/{model}/infer", body, headers)
        except RequestRejected:
            if not self.binary:
                raise
            # Another runtime behind the same URL may no longer read binary tensors: the same
            # rows as JSON tell a lost extension from rows the model rejects.
            self.binary = False
            try:
                result = self.infer(
                    model, rows, input_name=input_name, parameters=parameters, request_id=request_id
                )
            except RequestRejected:
                self.binary = True  # the rows were at fault, not the encoding
                raise
            log.warning("%s rejected binary tensor data; sending JSON from now on", self.base_url)
            return result
        outputs = {}
        for item in document.get("outputs") or []:
            tensor = Tensor(
                name=str(item["name"]),
                datatype=str(item.get("datatype", "")),
                shape=tuple(int(s) for s in item.get("shape", ())),
                data=list(item.get("data", ())),
            )
            outputs[tensor.name] = tensor
        version = document.get("model_version")
        parameters = document.get("parameters")
        return InferResult(
            model_name=str(document.get("model_name", model)),
            model_version=None if version is None else str(version),
            outputs=outputs,
            parameters=parameters if isinstance(parameters, dict) else {},
        )

    def negotiate(self) -> None:
        """Use binary tensor data when the server's metadata lists the extension; a server
        without metadata (4xx) gets JSON. Unavailable: EndpointUnavailable, try again later."""
        try:
            extensions = self._call("GET", "/v2", None).get("extensions")
        except RequestRejected:
            extensions = None
        self.binary = isinstance(extensions, list) and BINARY_EXTENSION in extensions

    def metadata(self, model: str) -> ModelMetadata:
        document = self._call("GET", f"/v2/models/{model}", None)
        return ModelMetadata(
            name=str(document.get("name", model)),
            versions=tuple(str(v) for v in document.get("versions") or ()),
            inputs=tuple(document.get("inputs") or ()),
            outputs=tuple(document.get("outputs") or ()),
        )

    def profile(self, model: str, version: str) -> dict[str, Any] | None:
        """The reference profile of the version the predictor serves; None when it has none
        (a version registered before profiles, or no longer served: 404)."""
        try:
            document = self._call("GET", PROFILE_PATH.format(model=model, version=version), None)
        except RequestRejected as exc:
            if exc.status == 404:
                return None
            raise
        profile = document.get("profile")
        if not isinstance(profile, dict):
            raise BadAnswer(f"{self.base_url}: the profile of {model} {version} is not an object")
        return profile

    def _call(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        def once() -> httpx.Response:
            try:
                response = self._http.request(method, path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise Transient(f"{type(exc).__name__}: {exc}") from None
            status = response.status_code
            if status < 400:
                return response
            if status not in _RETRYABLE_STATUS:
                raise RequestRejected(status, _error_text(response))
            raise Transient(f"HTTP {status}: {_error_text(response)}")

        return _json(self.with_retries(self.base_url, f"{self.base_url}{path}", once))

    def with_retries(self, endpoint: str, call: str, once: Callable[[], T]) -> T:
        """`once()` under the circuit breaker, retried with backoff while it raises Transient
        (up to max_attempts); a RequestRejected means the endpoint answered: it counts as up.
        One loop for every transport (REST here, gRPC in grpc_client.py)."""
        problem = "circuit open"
        for attempt in range(1, self.max_attempts + 1):
            if not self.breaker.allow():
                raise EndpointUnavailable(
                    f"{endpoint}: circuit open ({problem}); next probe in "
                    f"{self.breaker.retry_in():.1f} s"
                )
            try:
                result = once()
            except RequestRejected:
                self.breaker.record_success()  # it answered: the endpoint is up
                raise
            except Transient as exc:
                problem = str(exc)
            else:
                self.breaker.record_success()
                return result
            self.breaker.record_failure()
            if attempt < self.max_attempts and self.breaker.allow():
                self.retries += 1
                self._sleep(self.backoff.delay(attempt))
        raise EndpointUnavailable(f"{call}: {problem}")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise BadAnswer(f"answer is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadAnswer("answer is not a JSON object")
    return document


def _error_text(response: httpx.Response) -> str:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500]
    if isinstance(document, Mapping) and "error" in document:
        return str(document["error"])[:500]
    return str(document)[:500]


def column(result: InferResult, name: str, n_rows: int, width: int = 1) -> Sequence[Any]:
    """Output `name`: `width` values per row, row after row (checked against `n_rows`)."""
    tensor = result.output(name)
    if len(tensor.data) != n_rows * width:
        per_row = "" if width == 1 else f" ({width} per row)"
        raise BadAnswer(
            f"model {result.model_name} output {name!r} has {len(tensor.data)} values "
            f"for {n_rows} rows{per_row}"
        )
    return tensor.data
