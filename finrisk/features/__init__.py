"""Transaction and user features, defined once for training (batch) and streaming (online).

- `definitions`: feature names and constants (windows, thresholds, category groups);
- `formulas`: each feature's formula, written once over per-user running statistics;
- `batch`: the statistics vectorised over a DataFrame (training, evaluation); its input
  checks and sorting in `batch_inputs`, the statistics in `batch_stats`;
- `online`: the statistics kept incrementally per user (the Kafka bridge), with snapshots;
  `OnlineFeatures` is there, the work in the `online_*` modules (listed in `online`);
- `sql`: the batch transaction statistics as BigQuery SQL (window functions over event time),
  generated from `definitions`; the formulas run on the rows read back; `sql_users`: the
  user statistics (whole histories and snapshots) likewise;
- `ordering`: the per-user order, (timestamp, transaction_id), that causality refers to;
- `snapshots`: user features as of cut-off days into each history, for training the risk model.
"""

from finrisk.features.batch import batch_features, transaction_features, user_features
from finrisk.features.definitions import (
    LOW_BALANCE_THRESHOLD,
    SEED_USER_FEATURES,
    TRANSACTION_FEATURES,
    USER_FEATURES,
)
from finrisk.features.online import OnlineFeatures
from finrisk.features.ordering import ORDER_KEYS, canonical_order
from finrisk.features.snapshots import HISTORY_CUTOFF_DAYS, history_snapshots

__all__ = [
    "HISTORY_CUTOFF_DAYS",
    "LOW_BALANCE_THRESHOLD",
    "ORDER_KEYS",
    "SEED_USER_FEATURES",
    "TRANSACTION_FEATURES",
    "USER_FEATURES",
    "OnlineFeatures",
    "batch_features",
    "canonical_order",
    "history_snapshots",
    "transaction_features",
    "user_features",
]
