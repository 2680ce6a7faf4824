"""Features: transaction and user features, defined once in finrisk.features."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def build_features(
    dataset: Input[Dataset],
    transaction_features: Output[Dataset],
    user_features: Output[Dataset],
) -> str:
    """Write both feature tables (parquet); returns a JSON summary."""
    import json

    from finrisk.retraining.training import build_features as build

    summary = build(dataset.path, transaction_features.path, user_features.path)
    transaction_features.metadata.update({"rows": summary.transactions, "format": "parquet"})
    user_features.metadata.update({"rows": summary.users, "format": "parquet"})
    return json.dumps(summary.to_dict())
