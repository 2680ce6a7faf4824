"""Batched scoring through the predictor: the detector for transactions, the risk model for users.

The bridge hands over two matrices per batch, one row per transaction: its
TRANSACTION_FEATURES and its user's USER_FEATURES after it. `V2Scorer` reorders the columns to
each served model's input order (its V2 metadata lists one input per feature, in order),
sends each matrix as one 2-D FP64 tensor, and turns the answers into one `Score` per row.

The predictor's outputs (finrisk.serving.predictor): the detector returns `score` and
`is_anomaly`, with the threshold in the response parameters; the risk model returns
`probability`, `band` and, unless asked for none, `reasons` and `reason_contributions`
([rows, k]). Explaining costs the predictor far more than scoring, so under the "elevated"
policy the risk model is asked (parameter `reasons_from`) to explain only the rows it rates
MEDIUM or HIGH, in the same call. With `recommendations` > 0 the risk model is also asked
(parameter `recommendations`) for that many recommendations per MEDIUM or HIGH row
(finrisk.models.recommendations); each Score carries them parsed, None for the rows not searched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES
from finrisk.kinds import CHALLENGER
from finrisk.models.bands import MEDIUM
from finrisk.serving.bridge.binding import (
    MERCHANT_COLUMNS,
    Binding,
    feature_order,
    matrix_columns,
    served_version,
)
from finrisk.serving.bridge.merchant_risk import reads_merchant_risk
from finrisk.serving.bridge.outputs import Score
from finrisk.serving.bridge.shadow import Shadow
from finrisk.serving.bridge.v2_client import (
    BadAnswer,
    EndpointUnavailable,
    InferResult,
    RequestRejected,
    V2Client,
    column,
)
from finrisk.serving.protocol import (
    BAND_LOW_PARAMETER,
    BAND_OUTPUT,
    CONTRIBUTIONS_OUTPUT,
    FLAG_OUTPUT,
    MATRIX_INPUT,
    PROBABILITY_OUTPUT,
    REASONS_FROM_PARAMETER,
    REASONS_OUTPUT,
    REASONS_PARAMETER,
    RECOMMENDATIONS_OUTPUT,
    RECOMMENDATIONS_PARAMETER,
    SCORE_OUTPUT,
    THRESHOLD_PARAMETER,
)

# The lowest band whose rows get reasons under the "elevated" policy.
ELEVATED_BAND = MEDIUM

ReasonsPolicy = Literal["all", "elevated", "none"]

# Versions that keep changing between reading their metadata and scoring: after this many
# bindings for one batch, it stalls (retried with backoff) rather than spin.
MAX_REBINDS = 3

log = logging.getLogger("finrisk.bridge")


class Scorer(Protocol):
    def score(
        self, tx_rows: npt.NDArray[np.float64], user_rows: npt.NDArray[np.float64]
    ) -> list[Score]:
        """One Score per row; tx_rows in TRANSACTION_FEATURES order, user_rows in USER_FEATURES."""
        ...

    def close(self) -> None: ...

    def profile(self, model: str, version: str, role: str) -> dict[str, Any] | None:
        """The reference profile of a served model version in a role (champion: the detector
        or the risk model; challenger: the shadow's), None when it has none."""
        ...


class V2Scorer:
    def __init__(
        self,
        detector: V2Client,
        risk: V2Client | None,
        detector_model: str,
        risk_model: str | None,
        *,
        reasons: ReasonsPolicy = "elevated",
        reasons_per_row: int = 3,
        recommendations: int = 0,
        shadow: Shadow | None = None,
    ) -> None:
        self.detector = detector
        self.shadow = shadow
        self.risk = risk if risk_model else None
        self.detector_model = detector_model
        self.risk_model = risk_model
        self.reasons = reasons
        self.reasons_per_row = reasons_per_row
        self.recommendations = recommendations
        self._pool = ThreadPoolExecutor(
            max_workers=2 if shadow is not None else 1, thread_name_prefix="v2-detector"
        )
        self._detector: Binding | None = None
        self._risk: Binding | None = None
        self._merchant_risk = False
        # The columns of the bridge's transaction matrix, known from its first batch.
        self._tx_have: tuple[str, ...] | None = None
        self._lock = threading.RLock()  # bind() is called with it held

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.detector.close()
        if self.risk is not None and self.risk is not self.detector:
            self.risk.close()
        if self.shadow is not None:
            self.shadow.close()

    def profile(self, model: str, version: str, role: str) -> dict[str, Any] | None:
        if role == CHALLENGER:
            return None if self.shadow is None else self.shadow.profile(version)
        client = self.risk if model == self.risk_model and self.risk is not None else self.detector
        return client.profile(model, version)

    def bind(self) -> None:
        """Read both models' metadata (their served version and feature order), and whether
        each server takes binary tensors (retried by the clients)."""
        self.detector.negotiate()
        if self.risk is not None and self.risk is not self.detector:
            self.risk.negotiate()
        self._detector = self._bind_detector(self._tx_have)
        self._merchant_risk = reads_merchant_risk(self._detector.wanted)
        if self.risk is not None and self.risk_model is not None:
            metadata = self.risk.metadata(self.risk_model)
            self._risk = Binding.of(
                self.risk_model,
                feature_order(metadata.inputs, ()),
                USER_FEATURES,
                version=served_version(metadata),
            )

    def _bind_detector(self, have: Sequence[str] | None) -> Binding:
        """The detector's binding to the matrix of columns `have` (at start, before the first
        batch, the matrix this detector would get)."""
        metadata = self.detector.metadata(self.detector_model)
        order = feature_order(metadata.inputs, ())
        return Binding.of(
            self.detector_model,
            order,
            self.tx_columns(order) if have is None else have,
            version=served_version(metadata),
            at_start=MERCHANT_COLUMNS,
        )

    @staticmethod
    def tx_columns(detector_order: Sequence[str]) -> tuple[str, ...]:
        """The bridge's transaction matrix for a detector: TRANSACTION_FEATURES, then the
        served merchant features when it reads them (docs/bridge.md, "Merchant risk")."""
        if reads_merchant_risk(detector_order):
            return MERCHANT_COLUMNS
        return TRANSACTION_FEATURES

    def detector_reads_merchant_risk(self) -> bool:
        """Whether the served detector reads merchant risk (asks the predictor once)."""
        with self._lock:
            if self._detector is None or (self.risk is not None and self._risk is None):
                self.bind()
            return self._merchant_risk

    def score(
        self, tx_rows: npt.NDArray[np.float64], user_rows: npt.NDArray[np.float64]
    ) -> list[Score]:
        """Score a batch with the versions served now, each bound by its own feature order.

        A served version that changed since it was bound is bound again before its answer is
        kept: an answer names the version that computed it, and one from a version other than
        the one bound (the alias moved meanwhile) is thrown away and the batch scored again. A
        batch refused as a whole (4xx) re-reads the metadata first: a new version of another
        width is bound again rather than its rows split into dead letters."""
        for _ in range(MAX_REBINDS):
            detector, risk_binding = self._bindings(tx_rows.shape[1])
            try:
                champion, risk, challenger = self._score_once(
                    detector, risk_binding, tx_rows, user_rows
                )
            except RequestRejected:
                if not self._rebound(detector, risk_binding):
                    raise  # the same versions refused the rows: the loop isolates them
                continue
            moved = detector.answered_by_another(champion.model_version)
            if risk is not None and risk_binding is not None:
                moved |= risk_binding.answered_by_another(risk[0].model_version)
            if not moved:
                return _scores(champion, risk, len(tx_rows), challenger)
            log.warning("a batch was answered by a version other than the one bound; binding again")
            self._drop(detector, risk_binding)
        raise EndpointUnavailable(
            f"the served versions changed {MAX_REBINDS} times while one batch was scored; "
            "trying again"
        )

    def _bindings(self, width: int) -> tuple[Binding, Binding | None]:
        """The bindings to score with now, bound first when needed. Two threads may score at
        once (the loop isolating a refused batch's rows while the next batch is scored), so
        the bindings are read and replaced under a lock."""
        with self._lock:
            # Which columns the bridge computes was decided at its start (merchant risk or not).
            self._tx_have = matrix_columns(width)
            detector = self._detector
            if (
                detector is None
                or detector.columns.max(initial=-1) >= width
                or (self.risk is not None and self._risk is None)
            ):
                self.bind()
            assert self._detector is not None
            return self._detector, self._risk

    def _drop(self, detector: Binding, risk: Binding | None) -> None:
        """Forget these bindings (not newer ones another thread made meanwhile)."""
        with self._lock:
            if self._detector is detector:
                self._detector = None
            if self._risk is risk:
                self._risk = None

    def _score_once(
        self,
        detector: Binding,
        risk: Binding | None,
        tx_rows: npt.NDArray[np.float64],
        user_rows: npt.NDArray[np.float64],
    ) -> tuple[InferResult, RiskAnswer | None, InferResult | None]:
        # The models are called at once: the detector (and its challenger) from worker threads.
        pending = self._pool.submit(
            self.detector.infer,
            detector.model,
            detector.select(tx_rows),
            input_name=MATRIX_INPUT,
        )
        shadow = self._pool.submit(self.shadow.score, tx_rows) if self.shadow else None
        answer = self._risk_scores(user_rows, risk) if risk is not None else None
        champion = pending.result()
        return champion, answer, None if shadow is None else shadow.result()

    def _rebound(self, detector: Binding, risk: Binding | None) -> bool:
        """Whether either model's served version (or inputs) changed since it was bound: if
        so, those bindings are dropped, to be read again."""
        stale = detector.stale(self.detector.metadata(self.detector_model))
        if self.risk is not None and risk is not None and self.risk_model is not None:
            stale |= risk.stale(self.risk.metadata(self.risk_model))
        if stale:
            log.warning("a batch was refused and the served version changed; binding again")
            self._drop(detector, risk)
        return stale

    def _risk_scores(self, user_rows: npt.NDArray[np.float64], binding: Binding) -> RiskAnswer:
        risk = self.risk
        assert risk is not None
        n = len(user_rows)
        k = self.reasons_per_row
        parameters: dict[str, Any] = {REASONS_PARAMETER: 0 if self.reasons == "none" else k}
        if self.reasons == "elevated":
            parameters[REASONS_FROM_PARAMETER] = ELEVATED_BAND
        if self.recommendations:
            parameters[RECOMMENDATIONS_PARAMETER] = self.recommendations
        result = risk.infer(
            binding.model, binding.select(user_rows), input_name=MATRIX_INPUT, parameters=parameters
        )
        recommended = _recommendations(result, n) if self.recommendations else None
        if self.reasons == "none":
            return result, [[] for _ in range(n)], recommended
        if self.reasons == "all":
            return result, _reasons(result, n, k, range(n)), recommended
        # A predictor that ignores `reasons_from` explains every row: more work, same output,
        # since rows below the lower band edge keep no reasons here (and are not even read:
        # most rows of a stream are LOW).
        probabilities = np.asarray(column(result, PROBABILITY_OUTPUT, n), dtype=np.float64)
        low = float(result.parameters.get(BAND_LOW_PARAMETER, -1.0))
        rows = np.flatnonzero(probabilities >= low).tolist()
        return result, _reasons(result, n, k, rows), recommended


def _recommendations(result: InferResult, n: int) -> list[Any]:
    """Each row's recommendations, parsed: None where the predictor did not search ("")."""
    out: list[Any] = []
    for text in column(result, RECOMMENDATIONS_OUTPUT, n):
        if text == "":
            out.append(None)
            continue
        try:
            parsed = orjson.loads(text)
        except (orjson.JSONDecodeError, TypeError):
            parsed = None
        if not isinstance(parsed, list):
            raise BadAnswer(
                f"model {result.model_name} output {RECOMMENDATIONS_OUTPUT!r} holds "
                f"{str(text)[:40]!r}, not a JSON array"
            )
        out.append(parsed)
    return out


def _reasons(result: InferResult, n: int, k: int, rows: Iterable[int]) -> list[list[Any]]:
    """The reasons of `rows` (the others get none): the k (name, contribution) pairs of a row,
    without the empty names a predictor pads with."""
    names = column(result, REASONS_OUTPUT, n, k)
    values = column(result, CONTRIBUTIONS_OUTPUT, n, k)
    reasons: list[list[Any]] = [[] for _ in range(n)]
    for row in rows:
        start = row * k
        reasons[row] = [
            {"feature": name, "contribution": float(value)}
            for name, value in zip(names[start : start + k], values[start : start + k], strict=True)
            if name
        ]
    return reasons


# The risk model's answer, its rows' reasons, and their recommendations when asked.
RiskAnswer = tuple[InferResult, list[Any], list[Any] | None]


def _scores(
    detector: InferResult,
    risk: RiskAnswer | None,
    n: int,
    challenger: InferResult | None,
) -> list[Score]:
    raw_threshold = detector.parameters.get(THRESHOLD_PARAMETER)
    threshold = None if raw_threshold is None else float(raw_threshold)
    detector_version = detector.model_version or "unknown"
    fields: list[Iterable[Any]] = [
        _typed(float, column(detector, SCORE_OUTPUT, n)),
        _typed(bool, column(detector, FLAG_OUTPUT, n)),
        repeat(threshold),
    ]
    if risk is None:
        no_reasons: Iterable[list[Any]] = ([] for _ in range(n))
        fields += [repeat(None), repeat(None), no_reasons, repeat(detector_version), repeat(None)]
    else:
        result, reasons, _ = risk
        fields += [
            _typed(float, column(result, PROBABILITY_OUTPUT, n)),
            _typed(str, column(result, BAND_OUTPUT, n)),
            reasons,
            repeat(detector_version),
            repeat(result.model_version or "unknown"),
        ]
    if challenger is None:
        fields += [repeat(None), repeat(None), repeat(None)]
    else:
        fields += [
            _typed(float, column(challenger, SCORE_OUTPUT, n)),
            _typed(bool, column(challenger, FLAG_OUTPUT, n)),
            repeat(challenger.model_version or "unknown"),
        ]
    recommended = None if risk is None else risk[2]
    fields.append(repeat(None) if recommended is None else recommended)
    # tuple.__new__ makes the Scores without running Score's own (Python) __new__ per row:
    # a third of the cost, for thousands of rows per batch.
    return list(map(tuple.__new__, repeat(Score, n), zip(*fields, strict=False)))


def _typed(kind: type, values: Sequence[Any]) -> Sequence[Any]:
    """`values` as `kind`: as they are when all are already (JSON answers mostly are)."""
    if set(map(type, values)) <= {kind}:
        return values
    return [kind(v) for v in values]
