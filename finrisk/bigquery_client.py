"""A BigQuery client for Google's service, or for the local emulator when an endpoint is given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from google.cloud import bigquery

from finrisk.deploy.cluster import BIGQUERY_ENDPOINT_KEY, BIGQUERY_READ_ENDPOINT_KEY
from finrisk.errors import FinriskError


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


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def endpoints_from_env(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(BigQuery API URL, Storage Read API host:port) from BIGQUERY_ENDPOINT_KEY and
    BIGQUERY_READ_ENDPOINT_KEY in `env` (the ConfigMap's keys as the task's environment);
    None where unset or empty (Google's). A malformed value is a FinriskError naming it."""
    endpoint = env.get(BIGQUERY_ENDPOINT_KEY, "").strip() or None
    read = env.get(BIGQUERY_READ_ENDPOINT_KEY, "").strip() or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise FinriskError(
                f"{BIGQUERY_ENDPOINT_KEY}={endpoint!r} must be an http(s)://host[:port] URL "
                "(or empty for Google's BigQuery)"
            )
    if read is not None:
        host, _, port = read.rpartition(":")
        if not host or "/" in read or _port(port) is None:
            raise FinriskError(
                f"{BIGQUERY_READ_ENDPOINT_KEY}={read!r} must be host:port "
                "(or empty for Google's Storage Read API)"
            )
    return endpoint, read
