"""The raw-fields baseline: a default HistGradientBoostingClassifier on a transaction's own
fields, no history.

What a team gets from off-the-shelf boosting before any feature engineering, the bar the
detector's features must clear (docs/models-and-evaluation.md). Exactly these inputs:
- `amount`: the amount as given (currency units, always positive);
- `hour`: hour of day in UTC with minutes as a fraction (0 <= hour < 24);
- `category`, `channel`: the schema's values as pandas categoricals over the schema's full
  lists (finrisk.schema.CATEGORIES, CHANNELS), which the estimator's default
  `categorical_features="from_dtype"` treats as categories.
Direction is left out: the category fixes it. Estimator parameters are all sklearn's defaults
but the seed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from finrisk.errors import FinriskError
from finrisk.schema import AMOUNT, CATEGORIES, CATEGORY, CHANNEL, CHANNELS, TIMESTAMP

RAW_FIELDS: tuple[str, ...] = (AMOUNT, "hour", CATEGORY, CHANNEL)


def raw_field_frame(transactions: pd.DataFrame) -> pd.DataFrame:
    """The baseline's inputs (RAW_FIELDS) from canonical transactions."""
    ts = pd.to_datetime(transactions[TIMESTAMP], utc=True)
    return pd.DataFrame(
        {
            AMOUNT: transactions[AMOUNT].astype(np.float64),
            "hour": (ts.dt.hour + ts.dt.minute / 60).astype(np.float64),
            CATEGORY: pd.Categorical(transactions[CATEGORY], categories=list(CATEGORIES)),
            CHANNEL: pd.Categorical(transactions[CHANNEL], categories=list(CHANNELS)),
        },
        index=transactions.index,
    )


class RawFieldsBaseline:
    """Default HistGradientBoostingClassifier on RAW_FIELDS; needs labels."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: npt.ArrayLike) -> RawFieldsBaseline:
        labels = np.asarray(y, dtype=np.int64)
        if labels.min() == labels.max():
            raise FinriskError("the raw-fields baseline needs both fraud and legitimate labels")
        self.estimator_ = HistGradientBoostingClassifier(random_state=self.random_state)
        self.estimator_.fit(X[list(RAW_FIELDS)], labels)
        return self

    def anomaly_score(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Probability of fraud."""
        return np.asarray(self.estimator_.predict_proba(X[list(RAW_FIELDS)])[:, 1], np.float64)
