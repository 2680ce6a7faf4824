"""The kserve.Model of each finrisk model: load from the MLflow registry, score, reload.

preprocess parses and validates (V1 dict, V2 request, or the raw body our fast routes pass),
predict runs the compiled model (large batches in a worker thread: its tree evaluator, the
numba kernel or ONNX Runtime, releases the GIL, so the event loop keeps serving), postprocess
encodes the response once with orjson.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from finrisk.compiled import DETECTOR, RISK
from finrisk.errors import FinriskError
from finrisk.models.recommendations import MAX_RECOMMENDATIONS
from finrisk.registry import LoadedModel, ModelRef, get_version, load
from finrisk.serving.predictor import metrics
from finrisk.serving.predictor.inputs import (
    InputError,
    V2Request,
    check_codes,
    parse_json,
    reasons_from_parameter,
    reasons_parameter,
    recommendations_parameter,
    v1_matrix,
    v1_parameters,
    v2_request,
)
from finrisk.serving.predictor.kserve_import import kserve
from finrisk.serving.predictor.responses import encode, v1_body, v2_body
from finrisk.serving.predictor.scoring import MAX_REASONS, Scored, Scorer
from finrisk.serving.protocol import FLAG_OUTPUT, RECOMMENDATIONS_OUTPUT, RECOMMENDATIONS_PARAMETER

log = logging.getLogger(__name__)

V1 = "v1"
V2 = "v2"
# Batches (rows x model evaluations per row) this large are scored in a worker thread; below,
# handing over to a thread costs more than the scoring itself.
INLINE_MAX_WORK = 256


@dataclass(frozen=True)
class RawRequest:
    """A request body as our fast routes receive it, parsed in preprocess."""

    protocol: str
    body: bytes
    binary: bytes = b""  # V2 binary tensor data, after the JSON part


@dataclass(frozen=True)
class V2Document:
    """A V2 request already decoded (gRPC's ModelInferRequest, grpc_messages.py): the same
    document and binary tensor data a REST body carries, for the same validation."""

    document: dict[str, Any]
    binary: bytes = b""


@dataclass
class Batch:
    scorer: Scorer  # the version this request is answered with, start to end
    protocol: str
    matrix: Any
    request_id: str | None = None
    outputs: list[str] | None = None
    reasons: int | None = None
    reasons_from: str | None = None  # a risk band: explain only rows in it or above
    recommendations: int = 0  # per MEDIUM or HIGH row; 0: none


@dataclass(frozen=True)
class ReloadResult:
    name: str
    version: str
    previous: str
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "previous_version": self.previous,
            "changed": self.changed,
        }


class FinriskModel(kserve.Model):  # type: ignore[name-defined]
    """One registered finrisk model, following an alias (or pinned to a version)."""

    kind: ClassVar[str]

    def __init__(
        self,
        ref: ModelRef,
        *,
        tracking_uri: str | None = None,
        threads: int = 1,
        max_rows: int = 10_000,
        default_reasons: int = 3,
    ) -> None:
        super().__init__(ref.name)
        self.ref = ref
        self.tracking_uri = tracking_uri
        self.threads = threads
        self.max_rows = max_rows
        self.default_reasons = default_reasons
        self.scorer: Scorer | None = None
        self._reload_lock = asyncio.Lock()

    # -- loading -------------------------------------------------------------------------

    def _target_version(self) -> str | None:
        """The registry version the reference points at now (None: the alias is unset)."""
        if self.ref.version is not None:
            return self.ref.version
        assert self.ref.alias is not None
        found = get_version(self.ref.name, self.ref.alias, tracking_uri=self.tracking_uri)
        return None if found is None else str(found.version)

    def _fetch(self, version: str) -> LoadedModel:
        # Data only (the compiled graph and metadata), verified against the registered digest:
        # serving never unpickles an artifact.
        loaded = load(
            self.ref.name,
            version=version,
            tracking_uri=self.tracking_uri,
            threads=self.threads,
            python_model=False,
        )
        if loaded.kind != self.kind:
            raise FinriskError(
                f"{self.ref.name} version {version} is a {loaded.kind} model, expected {self.kind}"
            )
        loaded.alias = self.ref.alias
        return loaded

    def _install(self, loaded: LoadedModel) -> None:
        # One reference swap: requests in flight keep the Scorer they started with.
        self.scorer = Scorer(loaded, self.default_reasons)
        metrics.MODEL_VERSION.labels(self.name).set(float(loaded.version_number))

    def load(self) -> bool:
        version = self._target_version()
        if version is None:
            raise FinriskError(
                f"registered model {self.ref.name!r} has no alias {self.ref.alias!r}"
            )
        self._install(self._fetch(version))
        self.ready = True
        assert self.scorer is not None
        log.info(
            "loaded %s version %s (%s), trees on %s",
            self.name,
            version,
            self.ref.uri,
            self.scorer.compiled.engine,
        )
        return True

    def _reload_sync(self) -> ReloadResult:
        previous = self.scorer.version if self.scorer else ""
        version = self._target_version()
        if version is None:
            raise FinriskError(f"alias {self.ref.alias!r} of {self.ref.name!r} is no longer set")
        if version == previous:
            return ReloadResult(self.name, version, previous, changed=False)
        self._install(self._fetch(version))
        self.ready = True
        log.info("reloaded %s: version %s -> %s", self.name, previous, version)
        return ReloadResult(self.name, version, previous, changed=True)

    async def reload(self) -> ReloadResult:
        """Serve the version the alias points at now; a no-op when it has not moved."""
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(None, self._reload_sync)
            except Exception:
                metrics.RELOADS.labels(self.name, "failed").inc()
                raise
        metrics.RELOADS.labels(self.name, "changed" if result.changed else "unchanged").inc()
        return result

    # -- kserve handlers -----------------------------------------------------------------

    def validate(self, payload: Any) -> Any:
        return payload  # preprocess has validated everything already

    def _current(self) -> Scorer:
        if self.scorer is None:
            raise kserve.errors.ModelNotReady(self.name)
        return self.scorer

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Batch:
        scorer = self._current()
        try:
            return self._parse(scorer, payload)
        except InputError as exc:
            # kserve answers InvalidInput with 400 on its own routes too.
            raise kserve.errors.InvalidInput(str(exc)) from None

    def _parse(self, scorer: Scorer, payload: Any) -> Batch:
        names = scorer.feature_names
        if isinstance(payload, RawRequest):
            protocol, body = payload.protocol, parse_json(payload.body)
        elif isinstance(payload, V2Document):
            protocol, body = V2, payload.document
        elif isinstance(payload, bytes | bytearray):
            # kserve hands over the raw bytes when the content type is not JSON.
            raise InputError("content-type must be application/json")
        elif isinstance(payload, dict):
            protocol, body = V1, payload
        else:  # a kserve InferRequest from its own V2 route
            rest, _ = payload.to_rest()
            protocol, body = V2, rest
        max_reasons = min(MAX_REASONS, len(names))
        if protocol == V1:
            categories = scorer.compiled.categories
            matrix = check_codes(
                v1_matrix(body, names, self.max_rows, scorer.compiled.missing, categories),
                names,
                categories,
            )
            parameters = v1_parameters(body)
            reasons = reasons_parameter(parameters, max_reasons)
            return Batch(
                scorer,
                V1,
                matrix,
                reasons=reasons,
                reasons_from=reasons_from_parameter(parameters),
                recommendations=self._recommendations(scorer, parameters),
            )
        binary = payload.binary if isinstance(payload, RawRequest | V2Document) else b""
        request: V2Request = v2_request(
            body, names, self.max_rows, binary, scorer.compiled.missing, scorer.compiled.categories
        )
        check_codes(request.matrix, names, scorer.compiled.categories)
        if request.model_name not in (None, self.name):
            raise InputError(f"the body names model {request.model_name!r}, the URL {self.name!r}")
        if request.model_version not in (None, "", scorer.version):
            raise InputError(
                f"the body asks for version {request.model_version!r}; serving {scorer.version}"
            )
        reasons = reasons_parameter(request.parameters, max_reasons)
        if request.outputs is not None:
            known = scorer.output_names()
            for name in request.outputs:
                if name not in known:
                    raise InputError(
                        f"unknown output {name!r}; this model returns {', '.join(known)}"
                    )
            if reasons == 0 and any(n.startswith("reason") for n in request.outputs):
                raise InputError("outputs ask for reasons but parameter 'reasons' is 0")
        recommendations = self._recommendations(scorer, request.parameters)
        if (
            request.outputs is not None
            and RECOMMENDATIONS_OUTPUT in request.outputs
            and recommendations == 0
        ):
            raise InputError(
                f"outputs ask for {RECOMMENDATIONS_OUTPUT!r} but parameter "
                f"{RECOMMENDATIONS_PARAMETER!r} is not 1 to {MAX_RECOMMENDATIONS}"
            )
        reasons_from = reasons_from_parameter(request.parameters)
        return Batch(
            scorer,
            V2,
            request.matrix,
            request.id,
            request.outputs,
            reasons,
            reasons_from,
            recommendations,
        )

    def _recommendations(self, scorer: Scorer, parameters: dict[str, Any]) -> int:
        count = recommendations_parameter(parameters, MAX_RECOMMENDATIONS)
        if count and scorer.kind == DETECTOR:
            raise InputError(
                f"parameter {RECOMMENDATIONS_PARAMETER!r} is for risk models; "
                f"{self.name} is a detector"
            )
        return count

    async def predict(
        self, payload: Batch, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> tuple[Batch, Scored]:
        batch = payload
        rows = batch.matrix.shape[0]
        work = batch.scorer.work(rows, batch.reasons, batch.recommendations)
        arguments = (batch.matrix, batch.reasons, batch.reasons_from, batch.recommendations)
        if work < INLINE_MAX_WORK:
            scored = batch.scorer.score(*arguments)
        else:
            loop = asyncio.get_running_loop()
            scored = await loop.run_in_executor(None, batch.scorer.score, *arguments)
        metrics.ROWS.labels(self.name).inc(rows)
        if batch.scorer.kind == DETECTOR:
            metrics.ANOMALIES.labels(self.name).inc(int(scored.outputs[FLAG_OUTPUT].sum()))
        return batch, scored

    async def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> bytes:
        batch, scored = result
        if batch.protocol == V1:
            return encode(v1_body(batch.scorer, scored))
        return encode(v2_body(batch.scorer, scored, batch.request_id, batch.outputs))

    def get_input_types(self) -> list[dict[str, Any]]:
        return [spec.to_dict() for spec in self._current().inputs()]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [spec.to_dict() for spec in self._current().outputs()]


class DetectorPredictor(FinriskModel):
    """Transaction anomaly detector: score and anomaly flag per transaction."""

    kind = DETECTOR


class RiskPredictor(FinriskModel):
    """User risk classifier: probability, band and top reasons per user."""

    kind = RISK


MODEL_TYPES: dict[str, type[FinriskModel]] = {DETECTOR: DetectorPredictor, RISK: RiskPredictor}
