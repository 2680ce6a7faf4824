"""The confirmed labels a pipeline run read, kept in its dataset folder for the train task.

When ingest reads a labels table (IngestRequest.bigquery_labels_table) it writes LABELS_FILE
beside the transactions, one row per labelled transaction of the dataset:

    transaction_id  string
    is_fraud        bool: any of its outcomes is a fraud outcome (finrisk.labels' rule)
    labelled_at     UTC timestamp: when that became known (for a fraud, its earliest fraud
                    outcome; otherwise its first outcome)

Validation copies it with the dataset; the train task reads it back as finrisk.labels
LabelRecords (the transaction gives the user and event time) and trains the detector with
merchant risk from the labels known at each row's time, as `finrisk train --labels` does. A
dataset folder without it trains without merchant risk.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from finrisk.errors import FinriskError
from finrisk.labels import FRAUD_CONFIRMED, LEGITIMATE, LabelRecord
from finrisk.schema import IS_FRAUD, TIMESTAMP, TRANSACTION_ID, USER_ID

LABELS_FILE = "labels.parquet"
LABELLED_AT = "labelled_at"
LABEL_FILE_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, IS_FRAUD, LABELLED_AT)
# LabelRecord.source of the records read back: they came from the warehouse's labels table.
SOURCE = "labels_table"


def write_label_file(folder: str | Path, labels: pd.DataFrame, transaction_ids: pd.Series) -> Path:
    """LABELS_FILE in `folder`: the rows of `labels` (LABEL_FILE_COLUMNS) whose transaction is
    one of `transaction_ids` (a label for another transaction would be ignored in training)."""
    missing = [c for c in LABEL_FILE_COLUMNS if c not in labels.columns]
    if missing:
        raise FinriskError(f"the labels read lack column(s) {missing}")
    kept = labels.loc[labels[TRANSACTION_ID].isin(transaction_ids), list(LABEL_FILE_COLUMNS)]
    out = kept.astype({TRANSACTION_ID: str, IS_FRAUD: bool}).reset_index(drop=True)
    out[LABELLED_AT] = pd.to_datetime(out[LABELLED_AT], utc=True)
    path = Path(folder) / LABELS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(path, index=False)
    return path


def read_label_file(folder: str | Path) -> pd.DataFrame | None:
    """LABELS_FILE of a dataset folder, checked; None when the folder has none. A file that is
    not one raises FinriskError naming the file and the column at fault."""
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise FinriskError(f"{path} is not a readable Parquet file: {exc}") from None
    missing = [c for c in LABEL_FILE_COLUMNS if c not in table.column_names]
    if missing:
        raise FinriskError(f"{path} lacks the column(s) {missing} (it needs {LABEL_FILE_COLUMNS})")
    frame = table.select(list(LABEL_FILE_COLUMNS)).to_pandas()
    for column in LABEL_FILE_COLUMNS:
        empty = int(frame[column].isna().sum())
        if empty:
            raise FinriskError(f"{path}: column {column!r} has {empty} missing value(s)")
    kinds = {
        TRANSACTION_ID: (pa.types.is_string(table.schema.field(TRANSACTION_ID).type), "strings"),
        IS_FRAUD: (pa.types.is_boolean(table.schema.field(IS_FRAUD).type), "true/false"),
        LABELLED_AT: (
            pa.types.is_timestamp(table.schema.field(LABELLED_AT).type)
            and table.schema.field(LABELLED_AT).type.tz is not None,
            "UTC timestamps",
        ),
    }
    for column, (ok, wanted) in kinds.items():
        if not ok:
            found = table.schema.field(column).type
            raise FinriskError(f"{path}: column {column!r} must hold {wanted}, found {found}")
    frame[LABELLED_AT] = pd.to_datetime(frame[LABELLED_AT], utc=True)
    return frame


def label_records(labels: pd.DataFrame, transactions: pd.DataFrame) -> list[LabelRecord]:
    """`labels` (LABEL_FILE_COLUMNS) as LabelRecords of `transactions`' rows: user and event
    time from the transaction; a label of a transaction not among them is left out, as the
    merchant features would ignore it (finrisk.features.batch_merchants)."""
    ids = transactions[TRANSACTION_ID].astype(str)
    known = transactions.assign(**{TRANSACTION_ID: ids}).drop_duplicates(TRANSACTION_ID)
    known = known.set_index(TRANSACTION_ID)
    rows = labels[labels[TRANSACTION_ID].isin(known.index)]
    users = known.loc[rows[TRANSACTION_ID], USER_ID].astype(str).to_numpy()
    times = pd.to_datetime(known.loc[rows[TRANSACTION_ID], TIMESTAMP], utc=True)
    return [
        LabelRecord(
            transaction_id=tx,
            user_id=user,
            event_time=when.to_pydatetime(),
            outcome=FRAUD_CONFIRMED if fraud else LEGITIMATE,
            labelled_at=at.to_pydatetime(),
            source=SOURCE,
        )
        for tx, user, when, fraud, at in zip(
            rows[TRANSACTION_ID],
            users,
            times,
            rows[IS_FRAUD],
            rows[LABELLED_AT],
            strict=True,
        )
    ]


def read_label_records(folder: str | Path, transactions: pd.DataFrame) -> list[LabelRecord] | None:
    """The dataset folder's labels as LabelRecords of `transactions`; None without a file."""
    labels = read_label_file(folder)
    return None if labels is None else label_records(labels, transactions)
