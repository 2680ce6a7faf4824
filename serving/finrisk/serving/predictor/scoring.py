"""What one served model computes, and the tensors it takes and returns (no kserve here).

Detector: score (FP64) and is_anomaly (BOOL, score >= the registered threshold).
Risk model: probability (FP64), band (BYTES: LOW / MEDIUM / HIGH at the registered edges) and
the top reasons (occlusion against the training medians, finrisk.models.reasons), as
`reasons` (BYTES [rows, k], feature names, "" where a row has fewer) and
`reason_contributions` (FP64 [rows, k]); when asked, `recommendations` (BYTES [rows], a JSON
array per MEDIUM or HIGH row, finrisk.models.recommendations; "" for the rows not searched).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from finrisk.compiled import DETECTOR
from finrisk.models.bands import MEDIUM, RiskBands
from finrisk.models.reasons import Reason, occlusion_contributions, top_columns, top_reasons
from finrisk.models.recommendations import RecommendationSearch
from finrisk.registry import LoadedModel
from finrisk.serving.protocol import (
    BAND_OUTPUT,
    BYTES,
    CATEGORIES_PARAMETER,
    CONTRIBUTIONS_OUTPUT,
    DATATYPES_PARAMETER,
    FLAG_OUTPUT,
    FP64,
    OPTIONAL_PARAMETER,
    PROBABILITY_OUTPUT,
    REASONS_OUTPUT,
    RECOMMENDATIONS_OUTPUT,
    SCORE_OUTPUT,
    THRESHOLD_PARAMETER,
    risk_parameters,
)

Matrix = npt.NDArray[np.float64]
MAX_REASONS = 10
# Explaining a row in one pass (linear heads) costs about as much as scoring it ten times
# (measured on the registered risk model, 38 features); re-scoring costs features + 1 times.
ONE_PASS_OCCLUSION_WORK = 10


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]
    # Inputs only (docs/serving.md, "Missing values and categories"): whether a value may be
    # missing (null / NaN), and a categorical input's categories (the value is the index, or
    # the category's text: such an input also takes BYTES).
    optional: bool = False
    categories: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": self.shape}
        parameters: dict[str, Any] = {}
        if self.optional:
            parameters[OPTIONAL_PARAMETER] = True
        if self.categories is not None:
            parameters[CATEGORIES_PARAMETER] = list(self.categories)
            parameters[DATATYPES_PARAMETER] = [self.datatype, BYTES]
        if parameters:
            out["parameters"] = parameters
        return out


@dataclass(frozen=True)
class Explained:
    """One batch's occlusion contributions, turned into Reason objects only when asked (V1)."""

    contributions: Matrix
    values: Matrix
    reference: Matrix
    feature_names: tuple[str, ...]
    k: int

    def reasons(self) -> list[list[Reason]]:
        return top_reasons(
            self.contributions, self.values, self.reference, self.feature_names, self.k
        )


@dataclass
class Scored:
    """One batch's results: output name -> array (rows first), plus what explains them (risk)."""

    rows: int
    outputs: dict[str, npt.NDArray[Any]]
    explained: Explained | None = None
    # Per row when asked: None (not searched: LOW), else the recommendations' dicts.
    recommended: list[list[dict[str, Any]] | None] | None = None


class Scorer:
    """The compiled model of one registered version, with its decision parameters."""

    def __init__(self, loaded: LoadedModel, default_reasons: int = 3) -> None:
        self.loaded = loaded
        self.name = loaded.name
        self.version = loaded.version_number
        self.kind = loaded.kind
        self.compiled = loaded.compiled
        self.feature_names: tuple[str, ...] = tuple(loaded.compiled.feature_names)
        meta = loaded.metadata
        if self.kind == DETECTOR:
            self.threshold = float(meta["threshold"])
        else:
            self.bands = RiskBands.from_dict(meta["bands"])
            self.reference = np.asarray(meta["reference"], dtype=np.float64)
            self.default_reasons = min(default_reasons, len(self.feature_names))
            # Index len(feature_names) is "": the name of a slot left empty (zero contribution).
            self._reason_names = np.array([*self.feature_names, ""])
            self._occluder = self.compiled.occluder(self.reference)
            # Against the compiled model itself: the scores a recommendation promises are the
            # ones this predictor returns for the changed row.
            self.recommender = RecommendationSearch(
                self.compiled.score, self.feature_names, self.bands
            )

    def inputs(self) -> list[TensorSpec]:
        return [
            TensorSpec(
                name,
                FP64,
                [-1],
                optional=name in self.compiled.missing,
                categories=self.compiled.categories.get(name),
            )
            for name in self.feature_names
        ]

    def outputs(self) -> list[TensorSpec]:
        if self.kind == DETECTOR:
            return [TensorSpec(SCORE_OUTPUT, FP64, [-1]), TensorSpec(FLAG_OUTPUT, "BOOL", [-1])]
        k = self.default_reasons
        return [
            TensorSpec(PROBABILITY_OUTPUT, FP64, [-1]),
            TensorSpec(BAND_OUTPUT, BYTES, [-1]),
            TensorSpec(REASONS_OUTPUT, BYTES, [-1, k]),
            TensorSpec(CONTRIBUTIONS_OUTPUT, FP64, [-1, k]),
            TensorSpec(RECOMMENDATIONS_OUTPUT, BYTES, [-1]),
        ]

    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs()]

    def datatypes(self) -> dict[str, str]:
        return {spec.name: spec.datatype for spec in self.outputs()}

    def decision_parameters(self) -> dict[str, float]:
        """decision() flattened to scalars (Open Inference parameters hold scalars only)."""
        if self.kind == DETECTOR:
            return {THRESHOLD_PARAMETER: self.threshold}
        return dict(risk_parameters(self.bands.low, self.bands.high))

    def decision(self) -> dict[str, Any]:
        """The registered decision parameters, echoed in responses and metadata."""
        if self.kind == DETECTOR:
            return {THRESHOLD_PARAMETER: self.threshold}
        return {"bands": self.bands.to_dict()}

    def score(
        self,
        matrix: Matrix,
        reasons: int | None = None,
        reasons_from: str | None = None,
        recommendations: int = 0,
    ) -> Scored:
        """Outputs for each row; risk: `reasons` per row (default `default_reasons`), only for
        rows of band `reasons_from` or above when given (the others get empty slots), and up
        to `recommendations` per MEDIUM or HIGH row when > 0."""
        scores = self.compiled.score(matrix)
        if self.kind == DETECTOR:
            return Scored(
                len(matrix), {SCORE_OUTPUT: scores, FLAG_OUTPUT: scores >= self.threshold}
            )
        k = self.default_reasons if reasons is None else reasons
        out: dict[str, npt.NDArray[Any]] = {
            PROBABILITY_OUTPUT: scores,
            BAND_OUTPUT: self.bands.bands(scores),
        }
        explained = None
        if k > 0:
            if reasons_from is None:
                contributions = self._contributions(matrix)
            else:
                # Rows left unexplained keep all-zero contributions: empty slots, as a row
                # whose every feature sits at the reference gets.
                rows = np.flatnonzero(self.bands.at_least(scores, reasons_from))
                contributions = np.zeros_like(matrix)
                if len(rows):
                    contributions[rows] = self._contributions(matrix[rows])
            explained = Explained(contributions, matrix, self.reference, self.feature_names, k)
            # The V2 tensors straight from arrays: building Reason objects per row cost as much
            # as the occlusion itself. Same ranking and empty slots as top_reasons.
            columns = top_columns(contributions, k)
            picked = np.take_along_axis(contributions, columns, axis=1)
            kept = picked != 0.0
            out[REASONS_OUTPUT] = self._reason_names[
                np.where(kept, columns, len(self.feature_names))
            ]
            out[CONTRIBUTIONS_OUTPUT] = np.where(kept, picked, 0.0)
        recommended = None
        if recommendations > 0:
            recommended = self._recommend(matrix, scores, recommendations)
            out[RECOMMENDATIONS_OUTPUT] = np.array(
                ["" if row is None else orjson.dumps(row).decode() for row in recommended]
            )
        return Scored(len(matrix), out, explained, recommended)

    def _recommend(
        self, matrix: Matrix, scores: Matrix, k: int
    ) -> list[list[dict[str, Any]] | None]:
        recommended: list[list[dict[str, Any]] | None] = [None] * len(matrix)
        for i in np.flatnonzero(self.bands.at_least(scores, MEDIUM)).tolist():
            row = matrix[i : i + 1]
            found = self.recommender.for_row(row, str(self.bands.band(float(scores[i]))), k)
            recommended[i] = [rec.to_dict() for rec in found]
        return recommended

    @property
    def one_pass_reasons(self) -> bool:
        """Reasons without re-scoring occluded rows (the model has a linear head)."""
        return self.kind != DETECTOR and self._occluder is not None

    def work(self, rows: int, reasons: int | None = None, recommendations: int = 0) -> int:
        """What scoring `rows` costs, in plain model evaluations (to choose inline or a thread);
        recommendations counted as if every row were elevated (the bound)."""
        if self.kind == DETECTOR:
            return rows
        searched = rows * self.recommender.evaluations if recommendations > 0 else 0
        if (self.default_reasons if reasons is None else reasons) == 0:
            return rows + searched
        if self.one_pass_reasons:
            return rows * ONE_PASS_OCCLUSION_WORK + searched
        return rows * (len(self.feature_names) + 1) + searched

    def _contributions(self, matrix: Matrix) -> Matrix:
        if self._occluder is None:
            return occlusion_contributions(self.compiled.score, matrix, self.reference)
        # Linear heads: the same occlusion in one pass over the rows (finrisk/compiled/heads.py).
        occluded = self._occluder(matrix)
        contributions: Matrix = occluded[:, -1:] - occluded[:, :-1]
        return contributions
