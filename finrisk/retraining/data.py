"""Ingest and validation stages.

Ingest copies the source's tables as read (after column mapping nothing is coerced yet), so
that validation sees every problem the source has: a file or dataset folder (local path,
`gs://` or `http(s)://`), a BigQuery table, or the synthetic generator. Validation checks both
tables with finrisk.validation and, when they pass, writes the canonical dataset the training
stages read, with its fingerprint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from finrisk.deploy import cluster
from finrisk.errors import FinriskError
from finrisk.io import read_table
from finrisk.parsing import parse_transactions
from finrisk.retraining.bigquery_sample import SQL_STATS_FILE, SQL_USER_STATS_FILE
from finrisk.retraining.dataset import (
    TRANSACTIONS_FILE,
    Dataset,
    fingerprint,
    read_dataset,
    write_dataset,
)
from finrisk.retraining.label_file import LABELS_FILE, write_label_file
from finrisk.schema import (
    FRAUD_TYPE,
    IS_FRAUD,
    IS_RISKY,
    TIMESTAMP,
    TRANSACTION_ID,
    USER_ID,
    default_schema,
)
from finrisk.validation import ValidationReport, validate_transactions, validate_users

SYNTHETIC = "synthetic"
URI = "uri"
BIGQUERY = "bigquery"
SOURCES: tuple[str, ...] = (SYNTHETIC, URI, BIGQUERY)


@dataclass(frozen=True)
class IngestRequest:
    source: str = SYNTHETIC
    uri: str = ""
    users_uri: str = ""
    bigquery_table: str = ""
    bigquery_users_table: str = ""
    # project.dataset.table of confirmed labels (finrisk labels load): when set, each
    # transaction's is_fraud comes from it (docs/monitoring.md, "Training on confirmed labels").
    bigquery_labels_table: str = ""
    label_maturity_days: float = 60.0
    # The SQL path (finrisk.retraining.bigquery_sample): the transaction features are computed
    # in BigQuery and only a hashed share of the users is read back (lowered to about
    # bigquery_sample_rows transactions when > 0), in Read API batches or REST pages of
    # bigquery_page_size rows. False reads the whole table into pandas.
    bigquery_sql_features: bool = True
    bigquery_sample_share: float = 1.0
    bigquery_sample_rows: int = 0
    bigquery_page_size: int = 10_000
    synthetic_users: int = 400
    synthetic_days: int = 60
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise FinriskError(f"data source {self.source!r} is unknown; use one of {SOURCES}")
        if self.source == URI and not self.uri:
            raise FinriskError("data source 'uri' needs data_uri (a file, folder or URL)")
        if self.source == BIGQUERY and not self.bigquery_table:
            raise FinriskError(
                "data source 'bigquery' needs bigquery_table (project.dataset.table)"
            )
        if not 0 < self.bigquery_sample_share <= 1:
            raise FinriskError(
                f"bigquery_sample_share must be in (0, 1], got {self.bigquery_sample_share}"
            )
        if self.bigquery_sample_rows < 0:
            raise FinriskError(
                f"bigquery_sample_rows must be >= 0 (0: no cap), got {self.bigquery_sample_rows}"
            )
        if self.bigquery_page_size < 1:
            raise FinriskError(f"bigquery_page_size must be >= 1, got {self.bigquery_page_size}")


# ---------------------------------------------------------------- reading files and URIs


@contextmanager
def _local(uri: str) -> Iterator[Path]:
    """A local path for `uri`: itself, or a download of a gs:// or http(s):// object."""
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        path = Path(urlparse(uri).path if scheme == "file" else uri)
        if not path.exists():
            raise FinriskError(f"data_uri {uri!r} does not exist")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="finrisk-ingest-") as tmp:
        target = Path(tmp) / (Path(urlparse(uri).path).name or "data")
        if scheme == "gs":
            from google.cloud import storage

            parsed = urlparse(uri)
            blob = storage.Client().bucket(parsed.netloc).blob(parsed.path.lstrip("/"))
            if not blob.exists():
                raise FinriskError(f"data_uri {uri!r} does not exist")
            blob.download_to_filename(str(target))
        elif scheme in ("http", "https"):
            import httpx

            with httpx.stream("GET", uri, follow_redirects=True, timeout=60) as response:
                if response.status_code != 200:
                    raise FinriskError(f"data_uri {uri!r} answered HTTP {response.status_code}")
                with target.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        else:
            raise FinriskError(
                f"data_uri {uri!r}: scheme {scheme!r} is not supported "
                "(a path, file://, gs:// or http(s)://)"
            )
        yield target


def _from_uri(uri: str, users_uri: str) -> Dataset:
    with _local(uri) as path:
        if path.is_dir():
            if not (path / TRANSACTIONS_FILE).is_file():
                raise FinriskError(f"folder {uri!r} has no {TRANSACTIONS_FILE}")
            data = read_dataset(path)
        else:
            data = Dataset(read_table(path), None, {})
    if users_uri:
        with _local(users_uri) as users_path:
            data.users = read_table(users_path)
    data.manifest = {**data.manifest, "source": URI, "uri": uri, "users_uri": users_uri or None}
    return data


# ---------------------------------------------------------------- BigQuery


def _bigquery_frame(client: Any, table: str) -> pd.DataFrame:
    from google.api_core import exceptions

    try:
        rows = client.list_rows(client.get_table(table))
        # Through Arrow: pandas' BigQuery extras (db-dtypes) are not needed for these types.
        frame: pd.DataFrame = rows.to_arrow(create_bqstorage_client=False).to_pandas()
        return frame
    except exceptions.NotFound:
        raise FinriskError(f"BigQuery table {table!r} does not exist") from None
    except exceptions.GoogleAPIError as exc:
        raise FinriskError(f"reading BigQuery table {table!r} failed: {exc}") from None


@contextmanager
def bigquery_credentials() -> Iterator[None]:
    """A service-account key that arrived as JSON text (a Secret as env) as the ADC file."""
    text = os.environ.get(cluster.BIGQUERY_CREDENTIALS_ENV)
    if not text or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="finrisk-gcp-") as tmp:
        key = Path(tmp) / "key.json"
        key.write_text(text, encoding="utf-8")
        key.chmod(0o600)
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
        try:
            yield
        finally:
            os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)


def labelled(
    transactions: pd.DataFrame, labels: pd.DataFrame, maturity_days: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Transactions with is_fraud from confirmed labels (one row per labelled transaction:
    transaction_id, is_fraud, labelled_at): fraud when any outcome was, 0 for a legitimate
    outcome; an unlabelled transaction counts as legitimate once older than `maturity_days`
    before the newest label (the label stream's horizon), and is left out of training before
    (its outcome may still come). fraud_type is dropped: labels do not say which kind."""
    horizon = labels["labelled_at"].max() if len(labels) else None
    joined = transactions.drop(columns=[IS_FRAUD, FRAUD_TYPE], errors="ignore").merge(
        labels[[TRANSACTION_ID, IS_FRAUD]], on=TRANSACTION_ID, how="left"
    )
    times = pd.to_datetime(joined[TIMESTAMP], utc=True)
    unlabelled = joined[IS_FRAUD].isna()
    mature = (
        times <= horizon - pd.Timedelta(days=maturity_days)
        if horizon is not None
        else pd.Series(False, index=joined.index)
    )
    kept = joined[~unlabelled | mature].copy()
    kept[IS_FRAUD] = kept[IS_FRAUD].astype("boolean").fillna(False).astype("int64")
    summary = {
        "labelled": int((~unlabelled).sum()),
        "unlabelled_mature": int((unlabelled & mature).sum()),
        "unlabelled_excluded": int((unlabelled & ~mature).sum()),
        "label_horizon": None if horizon is None else horizon.isoformat(),
        "label_maturity_days": maturity_days,
    }
    return kept.reset_index(drop=True), summary


def _labels_frame(client: Any, table: str) -> pd.DataFrame:
    """One row per labelled transaction (transaction_id, is_fraud, labelled_at): a fraud's
    labelled_at is when its fraud became known (its earliest fraud outcome), as merchant risk
    counts it (finrisk.retraining.label_file)."""
    from google.api_core import exceptions

    from finrisk.monitoring.warehouse import LABELS_BY_TRANSACTION

    try:
        rows = client.query(LABELS_BY_TRANSACTION.format(labels=table)).result()
        frame: pd.DataFrame = rows.to_arrow(create_bqstorage_client=False).to_pandas()
    except exceptions.GoogleAPIError as exc:
        raise FinriskError(f"reading the labels table {table!r} failed: {exc}") from None
    fraud = frame["is_fraud"].astype(bool)
    frame.loc[fraud, "labelled_at"] = frame.loc[fraud, "fraud_labelled_at"]
    return frame.drop(columns="fraud_labelled_at")


def _read_client(endpoint: str | None, read_endpoint: str | None) -> Any:
    """The Storage Read API client for the SQL path: the emulator's at `read_endpoint`, none
    (REST pages) for another BigQuery `endpoint`, else Google's."""
    from finrisk.bigquery_client import bigquery_read_client

    if read_endpoint:
        return bigquery_read_client(read_endpoint)
    return None if endpoint else bigquery_read_client()


# Files that go with the dataset they were read with: the SQL path's statistics, and the
# labels of a labels table.
COPIED_FILES: tuple[str, ...] = (SQL_STATS_FILE, SQL_USER_STATS_FILE, LABELS_FILE)


def _from_bigquery(
    request: IngestRequest, endpoint: str | None, read_endpoint: str | None
) -> tuple[Dataset, dict[str, pd.DataFrame], pd.DataFrame | None]:
    """The dataset read from BigQuery, the SQL path's statistics by file name (none on the
    pandas path), and the labels table's rows by transaction (None without one)."""
    from finrisk.bigquery_client import bigquery_client
    from finrisk.features.sql import checked_table_id
    from finrisk.retraining.bigquery_sample import read_sample

    table = checked_table_id(request.bigquery_table, "bigquery_table")
    users_table = request.bigquery_users_table
    stats: dict[str, pd.DataFrame] = {}
    with bigquery_credentials():
        client = bigquery_client(table.split(".")[0], endpoint)
        manifest: dict[str, Any] = {
            "source": BIGQUERY,
            "table": table,
            "users_table": users_table or None,
        }
        if request.bigquery_sql_features:
            sample = read_sample(
                client,
                table,
                users_table,
                share=request.bigquery_sample_share,
                page_size=request.bigquery_page_size,
                read_client=_read_client(endpoint, read_endpoint),
                max_rows=request.bigquery_sample_rows,
            )
            transactions, users = sample.transactions, sample.users
            stats = {SQL_STATS_FILE: sample.stats, SQL_USER_STATS_FILE: sample.user_stats}
            manifest["sql_features"] = {
                "sample_share": sample.share,
                "batches": sample.batches,
                "read": sample.read,
            }
        else:
            transactions = _bigquery_frame(client, table)
            users = _bigquery_frame(client, users_table) if users_table else None
        labels = None
        if request.bigquery_labels_table:
            labels = _labels_frame(client, request.bigquery_labels_table)
            transactions, manifest["labels"] = labelled(
                transactions, labels, request.label_maturity_days
            )
            manifest["labels"]["table"] = request.bigquery_labels_table
    return Dataset(transactions, users, manifest), stats, labels


# ---------------------------------------------------------------- stages


def ingest(request: IngestRequest, out_dir: str | Path) -> dict[str, Any]:
    """Write the source's tables (as read) to `out_dir`; returns the manifest."""
    stats: dict[str, pd.DataFrame] = {}
    labels: pd.DataFrame | None = None
    if request.source == SYNTHETIC:
        from finrisk.synthetic import generate

        transactions, users, manifest = generate(
            request.synthetic_users, request.synthetic_days, request.seed
        )
        data = Dataset(transactions, users, {**manifest, "source": SYNTHETIC})
    elif request.source == URI:
        data = _from_uri(request.uri, request.users_uri)
    else:
        from finrisk.bigquery_client import endpoints_from_env

        data, stats, labels = _from_bigquery(request, *endpoints_from_env(os.environ))
    data.manifest["rows"] = len(data.transactions)
    data.manifest["users_rows"] = None if data.users is None else len(data.users)
    write_dataset(out_dir, data)
    for name, frame in stats.items():
        frame.to_parquet(Path(out_dir) / name, index=False)
    if labels is not None:
        # The train task trains the detector with merchant risk from them (label_file).
        write_label_file(out_dir, labels, data.transactions[TRANSACTION_ID].astype(str))
    return data.manifest


@dataclass(frozen=True)
class ValidationOutcome:
    passed: bool
    summary: str
    fingerprint: str
    reports: tuple[ValidationReport, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "summary": self.summary,
            "fingerprint": self.fingerprint,
            "reports": [r.to_dict() for r in self.reports],
        }

    def to_markdown(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        parts = [f"# Data validation {verdict}\n", self.summary + "\n"]
        if self.fingerprint:
            parts.append(f"Data fingerprint: `{self.fingerprint}`\n")
        for report in self.reports:
            parts.append(f"## {report.table}\n\n```\n{report.format()}\n```\n")
        return "\n".join(parts)


def validate(raw_dir: str | Path, out_dir: str | Path) -> ValidationOutcome:
    """Check the ingested tables; when they pass, write the canonical dataset to `out_dir`."""
    raw = read_dataset(raw_dir)
    # The output exists even when validation fails: a pipeline uploads every declared output.
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    schema = default_schema()
    tx_report = validate_transactions(raw.transactions, schema, source="transactions")
    reports = [tx_report]
    if raw.users is None:
        users_report = ValidationReport(rows=0, source="users", table="users")
        missing = "no users table: the risk model needs one with user_id and is_risky"
        reports.append(users_report)
        return ValidationOutcome(False, missing, "", tuple(reports))
    users_report = validate_users(raw.users, schema, source="users")
    reports.append(users_report)
    errors = [p for r in reports for p in r.errors]
    if errors:
        first = "; ".join(p.format() for p in errors[:3])
        summary = f"{len(errors)} validation error(s): {first}"
        return ValidationOutcome(False, summary, "", tuple(reports))
    transactions = parse_transactions(raw.transactions, schema).frame
    users = raw.users.rename(
        columns={schema.users.user_id_column: USER_ID, schema.users.label_column: IS_RISKY}
    )
    users = users.astype({USER_ID: str, IS_RISKY: "int64"})
    unknown = sorted(set(transactions[USER_ID]) - set(users[USER_ID]))
    if unknown:
        summary = (
            f"{len(unknown)} user(s) with transactions are missing from the users table "
            f"(first: {unknown[0]!r})"
        )
        return ValidationOutcome(False, summary, "", tuple(reports))
    fp = fingerprint(transactions, users)
    manifest = {**raw.manifest, "fingerprint": fp}
    write_dataset(out_dir, Dataset(transactions, users, manifest))
    # The SQL path's statistics and the labels go with the dataset they were read with.
    for name in COPIED_FILES:
        if (Path(raw_dir) / name).is_file():
            shutil.copyfile(Path(raw_dir) / name, Path(out_dir) / name)
    summary = (
        f"{tx_report.rows} transactions and {users_report.rows} users passed validation "
        f"({len(tx_report.warnings) + len(users_report.warnings)} warning(s))"
    )
    return ValidationOutcome(True, summary, fp, tuple(reports))


def write_report(
    outcome: ValidationOutcome, markdown_path: str | Path, json_path: str | Path | None = None
) -> None:
    Path(markdown_path).write_text(outcome.to_markdown(), encoding="utf-8")
    if json_path is not None:
        Path(json_path).write_text(json.dumps(outcome.to_dict(), indent=2) + "\n", encoding="utf-8")
