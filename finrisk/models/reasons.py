"""Per-row reasons: which features moved a model's probability, by occlusion.

contribution[i, j] = p(x_i) - p(x_i with feature j set to its training median)

It works for any model (no model internals), is deterministic (no sampling), and reads
directly as "this feature's value moved the risk by +0.12 compared with a typical user".
Ties in |contribution| keep the model's feature order: the same input gives the same reasons.
Contributions are ranked at RANK_DECIMALS: scoring a row in another batch can move its
probabilities in the last bits, which must not reorder two reasons of (nearly) equal weight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ProbaFn = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
# Probability units: far below any difference that matters, far above float noise (~1e-16).
RANK_DECIMALS = 12


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float
    reference: float  # the training median the value was compared with
    contribution: float  # change in probability this value causes; > 0 raises the risk

    def to_dict(self) -> dict[str, float | str]:
        return {
            "feature": self.feature,
            "value": self.value,
            "reference": self.reference,
            "contribution": self.contribution,
        }


def occlusion_contributions(
    proba: ProbaFn, values: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """(n_rows, n_features) probability change caused by each feature's actual value."""
    n, f = values.shape
    base = proba(values)
    # One batched call: row block j holds every row with feature j replaced by its reference.
    occluded = np.repeat(values[np.newaxis, :, :], f, axis=0)
    occluded[np.arange(f), :, np.arange(f)] = reference[:, np.newaxis]
    replaced = proba(occluded.reshape(f * n, f)).reshape(f, n)
    return (base[np.newaxis, :] - replaced).T


def top_columns(contributions: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.intp]:
    """(n_rows, k) feature indices by descending |contribution|, ties in feature order."""
    weight = np.round(np.abs(contributions), RANK_DECIMALS)
    return np.argsort(-weight, axis=1, kind="stable")[:, :k]


def top_reasons(
    contributions: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    reference: npt.NDArray[np.float64],
    feature_names: Sequence[str],
    k: int,
) -> list[list[Reason]]:
    """The k features with the largest |contribution| per row (zero contributions dropped)."""
    out: list[list[Reason]] = []
    for i, cols in enumerate(top_columns(contributions, k)):
        out.append(
            [
                Reason(
                    feature=feature_names[j],
                    value=float(values[i, j]),
                    reference=float(reference[j]),
                    contribution=float(contributions[i, j]),
                )
                for j in cols
                if contributions[i, j] != 0.0
            ]
        )
    return out
