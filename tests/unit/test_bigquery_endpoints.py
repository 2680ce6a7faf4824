"""The BigQuery endpoints a task reads from the ConfigMap: empty means Google's, a malformed
one is refused by name before any client is made."""

from __future__ import annotations

import pytest

from finrisk.bigquery_client import endpoints_from_env
from finrisk.deploy.cluster import BIGQUERY_ENDPOINT_KEY, BIGQUERY_READ_ENDPOINT_KEY
from finrisk.errors import FinriskError


def test_unset_or_empty_means_googles() -> None:
    assert endpoints_from_env({}) == (None, None)
    assert endpoints_from_env({BIGQUERY_ENDPOINT_KEY: " ", BIGQUERY_READ_ENDPOINT_KEY: ""}) == (
        None,
        None,
    )


def test_the_emulators_endpoints_pass() -> None:
    env = {
        BIGQUERY_ENDPOINT_KEY: "http://bigquery-emulator.finrisk:9050",
        BIGQUERY_READ_ENDPOINT_KEY: "bigquery-emulator.finrisk:9060",
    }
    assert endpoints_from_env(env) == (
        "http://bigquery-emulator.finrisk:9050",
        "bigquery-emulator.finrisk:9060",
    )


@pytest.mark.parametrize("value", ["bigquery:9050", "ftp://host:1", "http://", "http://h:99999"])
def test_a_malformed_endpoint_is_named(value: str) -> None:
    with pytest.raises(FinriskError, match=f"{BIGQUERY_ENDPOINT_KEY}=.*http\\(s\\)://host"):
        endpoints_from_env({BIGQUERY_ENDPOINT_KEY: value})


@pytest.mark.parametrize("value", ["host", "host:", ":9060", "http://host:9060", "host:0"])
def test_a_malformed_read_endpoint_is_named(value: str) -> None:
    with pytest.raises(FinriskError, match=f"{BIGQUERY_READ_ENDPOINT_KEY}=.*host:port"):
        endpoints_from_env({BIGQUERY_READ_ENDPOINT_KEY: value})


def test_ingest_refuses_a_malformed_read_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest checks the endpoints before it connects: the error names the variable."""
    from finrisk.retraining import data

    monkeypatch.setenv(BIGQUERY_READ_ENDPOINT_KEY, "not-a-host-port")
    request = data.IngestRequest(source="bigquery", bigquery_table="p.d.t")
    with pytest.raises(FinriskError, match=BIGQUERY_READ_ENDPOINT_KEY):
        data.ingest(request, "/nonexistent/never-written")
