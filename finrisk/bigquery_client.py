"""A BigQuery client for Google's service, or for the local emulator when an endpoint is given."""

from __future__ import annotations

from google.cloud import bigquery


def bigquery_client(project: str, endpoint: str | None = None) -> bigquery.Client:
    if endpoint is None:
        return bigquery.Client(project=project)
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
