"""Ingest: a file/URI, a BigQuery table, or synthetic data, copied as read."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest_data(
    raw_data: Output[Dataset],
    source: str = "synthetic",
    data_uri: str = "",
    users_uri: str = "",
    bigquery_table: str = "",
    bigquery_users_table: str = "",
    bigquery_labels_table: str = "",
    label_maturity_days: float = 60.0,
    bigquery_sql_features: bool = True,
    bigquery_sample_share: float = 1.0,
    bigquery_sample_rows: int = 0,
    bigquery_page_size: int = 10_000,
    synthetic_users: int = 400,
    synthetic_days: int = 60,
    seed: int = 0,
) -> int:
    """Read the transactions (and users with labels) from the source; returns the row count.
    With `bigquery_labels_table` (BigQuery source), fraud labels come from the confirmed
    outcomes there (finrisk.retraining.data: the maturity rule for unlabelled ones). From
    BigQuery the transaction features are computed by SQL in BigQuery and only
    `bigquery_sample_share` of the users (at most about `bigquery_sample_rows` transactions
    when > 0) is read back, `bigquery_page_size` rows at a time
    (finrisk.retraining.bigquery_sample); bigquery_sql_features=False reads the whole table."""
    from finrisk.retraining.data import IngestRequest, ingest

    request = IngestRequest(
        source=source,
        uri=data_uri,
        users_uri=users_uri,
        bigquery_table=bigquery_table,
        bigquery_users_table=bigquery_users_table,
        bigquery_labels_table=bigquery_labels_table,
        label_maturity_days=label_maturity_days,
        bigquery_sql_features=bigquery_sql_features,
        bigquery_sample_share=bigquery_sample_share,
        bigquery_sample_rows=bigquery_sample_rows,
        bigquery_page_size=bigquery_page_size,
        synthetic_users=synthetic_users,
        synthetic_days=synthetic_days,
        seed=seed,
    )
    manifest = ingest(request, raw_data.path)
    raw_data.metadata.update({"source": source, "rows": manifest["rows"]})
    return int(manifest["rows"])
