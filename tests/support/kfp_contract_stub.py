"""A contract stub of the Kubeflow Pipelines v2beta1 REST API, for testing `kfp.Client` calls.

Not a Kubeflow Pipelines server: it keeps pipelines, versions, experiments, runs and
recurring runs in memory and checks every request the way the real API server would reject
it (unknown pipeline or version, a version name used twice, run parameters the pipeline does
not declare or of the wrong type, a cron expression without seconds, max concurrency out of
[1, 10], an uploaded file that is not a pipeline spec). A rejected request gets the server's
error shape (HTTP 400/404/409 with `code` and `message`) and is kept in `violations`, so a test
can assert that a client honoured the contract. It binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import email.policy
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

PREFIX = "/apis/v2beta1"
# The API's parameter types and the JSON values each accepts.
_PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "STRUCT": (dict,),
    "LIST": (list,),
}
_GRPC_CODES = {400: 3, 404: 5, 409: 6}


class ContractViolation(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class State:
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    specs: dict[str, pipeline_spec_pb2.PipelineSpec] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _equals_filter(query: dict[str, list[str]]) -> str | None:
    """The value of a display_name EQUALS filter (the one predicate kfp.Client sends)."""
    raw = (query.get("filter") or [""])[0]
    if not raw:
        return None
    try:
        predicates = json.loads(raw)["predicates"]
    except (ValueError, KeyError, TypeError):
        raise ContractViolation(400, f"filter is not a valid filter JSON: {raw!r}") from None
    for predicate in predicates:
        if predicate.get("operation") not in ("EQUALS", 1):
            raise ContractViolation(400, f"unsupported filter operation {predicate!r}")
        if predicate.get("key") not in ("display_name", "name"):
            raise ContractViolation(400, f"unsupported filter key {predicate.get('key')!r}")
        return str(predicate.get("stringValue") or predicate.get("string_value"))
    return None


def _parse_spec(content: bytes) -> pipeline_spec_pb2.PipelineSpec:
    try:
        documents = [d for d in yaml.safe_load_all(content.decode("utf-8")) if d]
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContractViolation(400, f"uploaded file is not YAML: {exc}") from None
    if not documents or "pipelineInfo" not in documents[0]:
        raise ContractViolation(400, "uploaded file is not a pipeline spec (no pipelineInfo)")
    spec = pipeline_spec_pb2.PipelineSpec()
    try:
        json_format.ParseDict(documents[0], spec)
    except json_format.ParseError as exc:
        raise ContractViolation(400, f"invalid pipeline spec: {exc}") from None
    return spec


class KfpContractStub:
    """Start with `with KfpContractStub() as stub:`; `stub.host` is the API endpoint."""

    def __init__(self) -> None:
        self.state = State()
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def host(self) -> str:
        assert self._server is not None, "stub not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> KfpContractStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub._handle(self)

            def do_POST(self) -> None:
                stub._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ helpers for tests

    def calls(self, method: str, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        query = parse_qs(url.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type", "")
        body: Any = None
        try:
            if content_type.startswith("multipart/form-data"):
                body = self._multipart(raw, content_type)
            elif raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ContractViolation(400, "request body is not JSON") from None
            with self._lock:
                self.requests.append(Recorded(handler.command, url.path, query, body))
                status, response = 200, self._route(handler.command, url.path, query, body)
        except ContractViolation as exc:
            with self._lock:
                self.violations.append(f"{handler.command} {url.path}: {exc.message}")
            status = exc.status
            response = {
                "error": exc.message,
                "message": exc.message,
                "code": _GRPC_CODES.get(status, 2),
                "details": [],
            }
        data = json.dumps(response).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _multipart(raw: bytes, content_type: str) -> dict[str, bytes]:
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        if not message.is_multipart():
            raise ContractViolation(400, "multipart body expected")
        fields: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
        return fields

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        if not path.startswith(PREFIX + "/"):
            raise ContractViolation(404, f"not a v2beta1 API path: {path}")
        parts = path[len(PREFIX) + 1 :].split("/")
        match method, parts:
            case "GET", ["healthz"]:
                return {"commit_sha": "contract-stub", "tag_name": "2.17.3", "multi_user": False}
            case "GET", ["pipelines"]:
                return self._list_pipelines(query)
            case "POST", ["pipelines", "upload"]:
                return self._upload_pipeline(query, body)
            case "POST", ["pipelines", "upload_version"]:
                return self._upload_version(query, body)
            case "GET", ["pipelines", pipeline_id, "versions"]:
                return self._list_versions(pipeline_id, query)
            case "GET", ["experiments"]:
                return self._list_experiments(query)
            case "POST", ["experiments"]:
                return self._create_experiment(body)
            case "POST", ["runs"]:
                return self._create_run(body)
            case "POST", ["recurringruns"]:
                return self._create_recurring_run(body)
        raise ContractViolation(404, f"no such endpoint: {method} {path}")

    # ------------------------------------------------------------------ pipelines

    def _list_pipelines(self, query: dict[str, list[str]]) -> dict[str, Any]:
        name = _equals_filter(query)
        found = [
            p for p in self.state.pipelines.values() if name is None or p["display_name"] == name
        ]
        return {"pipelines": found, "total_size": len(found)} if found else {}

    def _upload_pipeline(self, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        name = (query.get("name") or [""])[0]
        if not name:
            raise ContractViolation(400, "pipeline name is required")
        if not isinstance(body, dict) or "uploadfile" not in body:
            raise ContractViolation(400, "multipart field 'uploadfile' is required")
        if any(p["display_name"] == name for p in self.state.pipelines.values()):
            raise ContractViolation(409, f"pipeline {name!r} already exists")
        spec = _parse_spec(body["uploadfile"])
        pipeline = {
            "pipeline_id": self._id("pipeline"),
            "display_name": name,
            "description": (query.get("description") or [""])[0],
            "created_at": _now(),
        }
        self.state.pipelines[pipeline["pipeline_id"]] = pipeline
        # The server creates a first version named like the pipeline.
        self._add_version(pipeline["pipeline_id"], name, spec)
        return pipeline

    def _add_version(
        self, pipeline_id: str, name: str, spec: pipeline_spec_pb2.PipelineSpec
    ) -> dict[str, Any]:
        version = {
            "pipeline_version_id": self._id("version"),
            "pipeline_id": pipeline_id,
            "display_name": name,
            "created_at": _now(),
        }
        self.state.versions[version["pipeline_version_id"]] = version
        self.state.specs[version["pipeline_version_id"]] = spec
        return version

    def _upload_version(self, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        name = (query.get("name") or [""])[0]
        pipeline_id = (query.get("pipelineid") or [""])[0]
        if not name or not pipeline_id:
            raise ContractViolation(400, "version name and pipelineid are required")
        if pipeline_id not in self.state.pipelines:
            raise ContractViolation(404, f"pipeline {pipeline_id} not found")
        if not isinstance(body, dict) or "uploadfile" not in body:
            raise ContractViolation(400, "multipart field 'uploadfile' is required")
        if any(
            v["pipeline_id"] == pipeline_id and v["display_name"] == name
            for v in self.state.versions.values()
        ):
            raise ContractViolation(409, f"version {name!r} already exists: versions are immutable")
        return self._add_version(pipeline_id, name, _parse_spec(body["uploadfile"]))

    def _list_versions(self, pipeline_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if pipeline_id not in self.state.pipelines:
            raise ContractViolation(404, f"pipeline {pipeline_id} not found")
        name = _equals_filter(query)
        found = [
            v
            for v in self.state.versions.values()
            if v["pipeline_id"] == pipeline_id and (name is None or v["display_name"] == name)
        ]
        return {"pipeline_versions": found, "total_size": len(found)} if found else {}

    # ------------------------------------------------------------------ experiments

    def _list_experiments(self, query: dict[str, list[str]]) -> dict[str, Any]:
        name = _equals_filter(query)
        found = [
            e for e in self.state.experiments.values() if name is None or e["display_name"] == name
        ]
        return {"experiments": found, "total_size": len(found)} if found else {}

    def _create_experiment(self, body: Any) -> dict[str, Any]:
        name = (body or {}).get("display_name")
        if not name:
            raise ContractViolation(400, "experiment display_name is required")
        if any(e["display_name"] == name for e in self.state.experiments.values()):
            raise ContractViolation(409, f"experiment {name!r} already exists")
        experiment = {
            "experiment_id": self._id("experiment"),
            "display_name": name,
            "created_at": _now(),
            "storage_state": "AVAILABLE",
        }
        self.state.experiments[experiment["experiment_id"]] = experiment
        return experiment

    # ------------------------------------------------------------------ runs

    def _check_run_request(self, body: Any) -> str:
        """Checks shared by runs and recurring runs; returns the version id."""
        if not isinstance(body, dict) or not body.get("display_name"):
            raise ContractViolation(400, "display_name is required")
        experiment = body.get("experiment_id")
        if experiment and experiment not in self.state.experiments:
            raise ContractViolation(404, f"experiment {experiment} not found")
        ref = body.get("pipeline_version_reference") or {}
        pipeline_id, version_id = ref.get("pipeline_id"), ref.get("pipeline_version_id")
        if not pipeline_id or not version_id:
            raise ContractViolation(
                400, "pipeline_version_reference needs pipeline_id and pipeline_version_id"
            )
        version = self.state.versions.get(version_id)
        if version is None or version["pipeline_id"] != pipeline_id:
            raise ContractViolation(
                404, f"version {version_id} of pipeline {pipeline_id} not found"
            )
        declared = self.state.specs[version_id].root.input_definitions.parameters
        parameters = (body.get("runtime_config") or {}).get("parameters") or {}
        for name, value in parameters.items():
            if name not in declared:
                raise ContractViolation(400, f"parameter {name!r} is not an input of the pipeline")
            kind = pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(
                declared[name].parameter_type
            )
            allowed = _PARAMETER_TYPES.get(kind, (object,))
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ContractViolation(
                    400, f"parameter {name!r} is {kind}, got {type(value).__name__} {value!r}"
                )
        return str(version_id)

    def _create_run(self, body: Any) -> dict[str, Any]:
        self._check_run_request(body)
        run = {**body, "run_id": self._id("run"), "state": "PENDING", "created_at": _now()}
        self.state.runs[run["run_id"]] = run
        return run

    def _create_recurring_run(self, body: Any) -> dict[str, Any]:
        self._check_run_request(body)
        cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron")
        if not cron:
            raise ContractViolation(400, "trigger.cron_schedule.cron is required")
        if len(cron.split()) != 6:
            raise ContractViolation(400, f"cron {cron!r} must have 6 fields (seconds first)")
        concurrency = int(body.get("max_concurrency") or 0)
        if not 1 <= concurrency <= 10:
            raise ContractViolation(400, f"max_concurrency must be in [1, 10], got {concurrency}")
        if body.get("mode") not in ("ENABLE", "DISABLE"):
            raise ContractViolation(400, f"mode must be ENABLE or DISABLE, got {body.get('mode')}")
        recurring = {
            **body,
            "recurring_run_id": self._id("recurring"),
            "status": "ENABLED",
            "created_at": _now(),
        }
        self.state.recurring_runs[recurring["recurring_run_id"]] = recurring
        return recurring
