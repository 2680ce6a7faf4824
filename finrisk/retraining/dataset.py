"""A dataset on disk: the folder layout every stage reads and writes, and its fingerprint.

transactions.parquet   canonical transactions (finrisk.schema)
users.parquet          one row per user with the `is_risky` label (optional)
manifest.json          where the data came from
transaction_stats.parquet  BigQuery's feature statistics (the SQL path only,
                       finrisk.retraining.bigquery_sample)
labels.parquet         the confirmed labels read with a labels table (optional,
                       finrisk.retraining.label_file)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.io import MANIFEST_FILE, TRANSACTIONS_FILE, USERS_FILE
from finrisk.schema import IS_RISKY, TRANSACTION_ID, USER_ID

__all__ = [
    "MANIFEST_FILE",
    "TRANSACTIONS_FILE",
    "USERS_FILE",
    "Dataset",
    "fingerprint",
    "read_dataset",
    "user_labels",
    "write_dataset",
]


@dataclass
class Dataset:
    transactions: pd.DataFrame
    users: pd.DataFrame | None
    manifest: dict[str, Any]


def fingerprint(transactions: pd.DataFrame, users: pd.DataFrame | None = None) -> str:
    """A content hash that ignores row order: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    for frame, key in ((transactions, TRANSACTION_ID), (users, USER_ID)):
        if frame is None:
            digest.update(b"-")
            continue
        ordered = frame.sort_values(key, kind="stable") if key in frame.columns else frame
        ordered = ordered[sorted(ordered.columns)]
        digest.update(",".join(ordered.columns).encode())
        hashes = pd.util.hash_pandas_object(ordered, index=False).to_numpy(dtype=np.uint64)
        digest.update(hashes.tobytes())
    return "sha256:" + digest.hexdigest()


def write_dataset(folder: str | Path, dataset: Dataset) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    dataset.transactions.to_parquet(out / TRANSACTIONS_FILE, index=False)
    if dataset.users is not None:
        dataset.users.to_parquet(out / USERS_FILE, index=False)
    (out / MANIFEST_FILE).write_text(
        json.dumps(dataset.manifest, indent=2, default=str) + "\n", encoding="utf-8"
    )
    return out


def read_dataset(folder: str | Path) -> Dataset:
    source = Path(folder)
    path = source / TRANSACTIONS_FILE
    if not path.is_file():
        raise FinriskError(f"{source} holds no {TRANSACTIONS_FILE}: not a finrisk dataset folder")
    users_path = source / USERS_FILE
    manifest_path = source / MANIFEST_FILE
    return Dataset(
        transactions=pd.read_parquet(path),
        users=pd.read_parquet(users_path) if users_path.is_file() else None,
        manifest=json.loads(manifest_path.read_text()) if manifest_path.is_file() else {},
    )


def user_labels(users: pd.DataFrame | None, user_ids: pd.Index) -> pd.Series:
    """`is_risky` for each of `user_ids` (in that order); names what is missing."""
    if users is None:
        raise FinriskError(
            f"the risk model needs a users table with {USER_ID!r} and {IS_RISKY!r}; "
            "the data has none"
        )
    for column in (USER_ID, IS_RISKY):
        if column not in users.columns:
            raise FinriskError(f"the users table has no {column!r} column")
    labels = users.drop_duplicates(USER_ID).set_index(USER_ID)[IS_RISKY].reindex(user_ids)
    missing = labels.index[labels.isna()]
    if len(missing):
        raise FinriskError(
            f"{len(missing)} users with transactions have no {IS_RISKY!r} label "
            f"(first: {missing[0]!r})"
        )
    return labels.astype(np.int64)
