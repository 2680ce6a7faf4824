"""A BigQuery client for Google's service, or for the local emulator when an endpoint is given."""

from __future__ import annotations

from typing import Any

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


def bigquery_read_client(endpoint: str | None = None) -> Any:
    """A BigQuery Storage Read API client: Google's, or the emulator's at `endpoint` (host:port,
    gRPC without TLS). Its messages are as large as the server's record batches."""
    from google.cloud import bigquery_storage_v1

    if endpoint is None:
        return bigquery_storage_v1.BigQueryReadClient()
    import grpc
    from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
        BigQueryReadGrpcTransport,
    )

    channel = grpc.insecure_channel(endpoint, options=[("grpc.max_receive_message_length", -1)])
    return bigquery_storage_v1.BigQueryReadClient(
        transport=BigQueryReadGrpcTransport(channel=channel)
    )
