"""Reading transaction and user tables (CSV, Parquet, or a generated dataset directory) and
writing generated datasets.

Anything unreadable raises FinriskError naming the file; data that does not fit the schema
raises DataValidationError carrying the full validation report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from finrisk.errors import FinriskError
from finrisk.parsing import parse_transactions
from finrisk.schema import IS_RISKY, USER_ID, Schema, default_schema
from finrisk.validation import ValidationReport, check_parsed, validate_users

TRANSACTIONS_FILE = "transactions.parquet"
USERS_FILE = "users.parquet"
MANIFEST_FILE = "manifest.json"
DATASET_FILES = (TRANSACTIONS_FILE, USERS_FILE, MANIFEST_FILE)

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")
_TSV_SUFFIXES = (".tsv", ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


class DataValidationError(FinriskError):
    """The data was read but does not fit the schema; `report` lists every problem."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.format())
        self.report = report


def is_dataset_dir(path: str | Path) -> bool:
    return (Path(path) / TRANSACTIONS_FILE).is_file()


def _resolve(path: str | Path, member: str) -> Path:
    p = Path(path)
    if p.is_dir():
        file = p / member
        if not file.is_file():
            raise FinriskError(
                f"{p} is a directory without {member}: give a CSV/Parquet file or a dataset "
                "directory made by `finrisk data generate`"
            )
        return file
    if not p.exists():
        raise FinriskError(f"no such file: {p}")
    return p


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV/TSV or Parquet file as stored (CSV values as text, so nothing is lost to guessing)."""
    p = Path(path)
    if not p.is_file():
        raise FinriskError(f"no such file: {p}" if not p.exists() else f"{p} is not a file")
    name = p.name.lower()
    try:
        if name.endswith(_PARQUET_SUFFIXES):
            return pd.read_parquet(p)
        if name.endswith(_CSV_SUFFIXES + _TSV_SUFFIXES):
            sep = "\t" if name.endswith(_TSV_SUFFIXES) else ","
            return pd.read_csv(p, sep=sep, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise FinriskError(f"cannot read {p}: the file is empty") from None
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        pa.ArrowException,
        OSError,
        ValueError,
        EOFError,
    ) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FinriskError(f"cannot read {p}: {reason}") from None
    raise FinriskError(
        f"cannot read {p}: unknown file type (expected .csv, .tsv or .parquet, or a dataset "
        "directory)"
    )


def load_transactions(
    path: str | Path, schema: Schema | None = None, *, validate: bool = True
) -> pd.DataFrame:
    """Canonical transactions from a file or dataset directory, in file order.

    Columns are renamed by the schema's column mapping, parsed to canonical dtypes and reduced
    to the canonical ones present. With `validate`, any schema error raises
    DataValidationError (with every problem); without, unparseable values become missing.
    """
    schema = schema or default_schema()
    file = _resolve(path, TRANSACTIONS_FILE)
    parsed = parse_transactions(read_table(file), schema)
    if validate:
        report = check_parsed(parsed, schema, source=str(file))
        if not report.ok:
            raise DataValidationError(report)
    frame = parsed.frame
    # Not reset_index(): its copy consolidates the object columns, seconds on a million rows.
    frame.index = pd.RangeIndex(len(frame))
    return frame


def load_users(
    path: str | Path, schema: Schema | None = None, *, validate: bool = True
) -> pd.DataFrame:
    """A user-level table with `user_id` (text) and `is_risky` (0/1) under their canonical names.

    The schema's `users` section names the id and label columns of the file; other columns
    are kept unchanged (e.g. your own per-user features).
    """
    schema = schema or default_schema()
    file = _resolve(path, USERS_FILE)
    raw = read_table(file)
    if validate:
        report = validate_users(raw, schema, source=str(file))
        if not report.ok:
            raise DataValidationError(report)
    id_col, label_col = schema.users.user_id_column, schema.users.label_column
    frame = raw.rename(columns={id_col: USER_ID, label_col: IS_RISKY}).reset_index(drop=True)
    if USER_ID in frame.columns:
        ids = frame[USER_ID]
        frame[USER_ID] = ids if ids.dtype == object else ids.astype(str).astype(object)
    if IS_RISKY in frame.columns:
        label = pd.to_numeric(frame[IS_RISKY], errors="coerce")
        frame[IS_RISKY] = label.astype(np.int64) if label.notna().all() else label.astype("Int64")
    return frame


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_dataset(
    directory: str | Path,
    transactions: pd.DataFrame,
    users: pd.DataFrame,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    """Write the three dataset files; returns the manifest as written (with file digests).

    Refuses a directory holding anything but a previous dataset, so nothing else is clobbered.
    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise FinriskError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DATASET_FILES)
        if foreign:
            raise FinriskError(
                f"--out {out} already holds other files ({', '.join(foreign[:5])}); "
                "choose an empty or new directory"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, Any] = {}
        for name, frame in ((TRANSACTIONS_FILE, transactions), (USERS_FILE, users)):
            file = out / name
            frame.to_parquet(file, index=False, compression="zstd")
            files[name] = {"rows": len(frame), "sha256": _sha256(file)}
        written = {**manifest, "files": files}
        (out / MANIFEST_FILE).write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise FinriskError(f"cannot write dataset to {out}: {exc.strerror or exc}") from None
    return written


def read_manifest(directory: str | Path) -> dict[str, Any]:
    file = _resolve(directory, MANIFEST_FILE)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FinriskError(f"cannot read {file}: {exc}") from None
    if not isinstance(data, dict):
        raise FinriskError(f"{file} does not hold a JSON object")
    return data
