"""Models: transaction anomaly detectors and user risk classifiers, each with its seed baseline."""

from finrisk.models.anomaly import (
    SEED_TRANSACTION_FIELDS,
    SeedIsolationForestDetector,
    TransactionAnomalyDetector,
    seed_transaction_frame,
)
from finrisk.models.bands import BAND_NAMES, DEFAULT_BANDS, RiskBands, band
from finrisk.models.persistence import load_model, save_model
from finrisk.models.reasons import Reason
from finrisk.models.risk import RiskModel, SeedLogisticRiskModel

__all__ = [
    "BAND_NAMES",
    "DEFAULT_BANDS",
    "SEED_TRANSACTION_FIELDS",
    "Reason",
    "RiskBands",
    "RiskModel",
    "SeedIsolationForestDetector",
    "SeedLogisticRiskModel",
    "TransactionAnomalyDetector",
    "band",
    "load_model",
    "save_model",
    "seed_transaction_frame",
]
