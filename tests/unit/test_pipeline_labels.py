"""The retraining pipeline's stages with a labels table: ingest keeps the label records beside
the transactions, the detector trains on them as `finrisk train --labels` does (merchant risk,
label delay), and the evaluation scores a champion that reads merchant risk on the same rows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finrisk import features
from finrisk.compiled import compile_model
from finrisk.errors import FinriskError
from finrisk.evaluation.compare import ANOMALY_K
from finrisk.evaluation.metrics import binary_metrics
from finrisk.evaluation.runs import OURS, AnomalyRun
from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS
from finrisk.features.batch_merchants import merchant_features
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.labels import LabelRecord
from finrisk.retraining import data, evaluation, training
from finrisk.retraining.dataset import Dataset, read_dataset
from finrisk.retraining.label_file import (
    LABEL_FILE_COLUMNS,
    LABELS_FILE,
    read_label_file,
    read_label_records,
)
from finrisk.schema import IS_FRAUD, TRANSACTION_ID
from finrisk.synthetic import generate
from finrisk.synthetic.labels import synthetic_labels

FAST_DETECTOR = {"max_iter": 40, "min_positives": 5}


def by_transaction(records: list[LabelRecord]) -> pd.DataFrame:
    """What ingest reads from a labels table (LABELS_BY_TRANSACTION, then the fraud's time)."""
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        row = rows.setdefault(r.transaction_id, {"is_fraud": False, "first": r.labelled_at})
        row["first"] = min(row["first"], r.labelled_at)
        if r.is_fraud:
            row["is_fraud"] = True
            row["fraud"] = min(row.get("fraud", r.labelled_at), r.labelled_at)
    return pd.DataFrame(
        {
            TRANSACTION_ID: list(rows),
            IS_FRAUD: [row["is_fraud"] for row in rows.values()],
            "labelled_at": pd.to_datetime(
                [row["fraud"] if row["is_fraud"] else row["first"] for row in rows.values()],
                utc=True,
            ),
        }
    )


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A hard-scenario table ingested as from BigQuery with a labels table, validated."""
    root = tmp_path_factory.mktemp("labelled")
    transactions, users, _ = generate(users=200, days=45, seed=5, scenario="hard")
    records = synthetic_labels(transactions, 5)
    labels = by_transaction(records)
    # A label of a transaction the source does not hold: not kept.
    stray = pd.DataFrame(
        {
            TRANSACTION_ID: ["not-in-the-table"],
            IS_FRAUD: [True],
            "labelled_at": labels.labelled_at[:1],
        }
    )
    labels = pd.concat([labels, stray], ignore_index=True)
    kept, summary = data.labelled(transactions, labels, 60.0)
    dataset = Dataset(kept, users, {"source": data.BIGQUERY, "labels": summary})
    read: tuple[Dataset, dict[str, pd.DataFrame], pd.DataFrame] = (dataset, {}, labels)
    mp = pytest.MonkeyPatch()
    mp.setattr(data, "_from_bigquery", lambda *args: read)
    try:
        data.ingest(data.IngestRequest(source="bigquery", bigquery_table="p.d.t"), root / "raw")
    finally:
        mp.undo()
    assert data.validate(root / "raw", root / "dataset").passed
    return {"root": root, "kept": kept, "records": records, "labels": labels}


def test_ingest_keeps_the_label_records_beside_the_transactions(
    labelled: dict[str, Any],
) -> None:
    root, kept = labelled["root"], labelled["kept"]
    for folder in ("raw", "dataset"):  # written by ingest, carried by validation
        written = pd.read_parquet(root / folder / LABELS_FILE)
        assert tuple(written.columns) == LABEL_FILE_COLUMNS
        assert set(written[TRANSACTION_ID]) == set(kept[TRANSACTION_ID]) & set(
            labelled["labels"][TRANSACTION_ID]
        )
        assert "not-in-the-table" not in set(written[TRANSACTION_ID])
    table = pq.read_table(root / "dataset" / LABELS_FILE)
    assert table.schema.field("labelled_at").type.tz == "UTC"


def test_no_labels_table_no_label_file(tmp_path: Path) -> None:
    data.ingest(data.IngestRequest(synthetic_users=20, synthetic_days=10), tmp_path / "raw")
    assert not (tmp_path / "raw" / LABELS_FILE).exists()
    assert read_label_file(tmp_path / "raw") is None


def test_labels_frame_dates_a_fraud_from_its_fraud_outcome() -> None:
    """A legitimate outcome first, a chargeback later: the fraud became known at the later."""
    early, late = pd.Timestamp("2026-01-02", tz="UTC"), pd.Timestamp("2026-01-09", tz="UTC")
    answer = pa.table(
        {
            TRANSACTION_ID: ["t1", "t2"],
            IS_FRAUD: [True, False],
            "labelled_at": pa.array([early, early], pa.timestamp("us", tz="UTC")),
            "fraud_labelled_at": pa.array([late, None], pa.timestamp("us", tz="UTC")),
        }
    )

    class Rows:
        def to_arrow(self, **_: Any) -> pa.Table:
            return answer

    class Client:
        def query(self, sql: str) -> Any:
            assert "fraud_labelled_at" in sql
            return type("Job", (), {"result": lambda self: Rows()})()

    frame = data._labels_frame(Client(), "p.d.labels")
    assert list(frame.columns) == list(LABEL_FILE_COLUMNS)
    assert frame.set_index(TRANSACTION_ID)["labelled_at"].to_dict() == {"t1": late, "t2": early}


def test_the_train_task_trains_as_train_with_labels(
    labelled: dict[str, Any], tmp_path: Path
) -> None:
    """The same run as `finrisk train --labels` (fit_detector with the label records and the
    delay): merchant risk as served, trained only on labels known at the cut-off."""
    dataset = labelled["root"] / "dataset"
    options = training.TrainingOptions(params=dict(FAST_DETECTOR))
    run = training.train_detector(dataset, tmp_path / "m", tmp_path / "r", options)
    assert run.ours.feature_names_ == (
        *features.TRANSACTION_FEATURES,
        *SERVED_MERCHANT_FEATURES,
    )
    assert run.split.label_delay_days == FRAUD_LABEL_DELAY_DAYS
    assert run.facts["merchant_features"] is True
    # Nothing labelled after the cut-off was trained or validated on.
    tx = read_dataset(dataset).transactions
    times = pd.to_datetime(tx["timestamp"], utc=True)
    assert times[run.split.train | run.split.validation].max() < run.split.labels_known_before

    reference = training.fit_detector(
        tx,
        training.TrainingOptions(params=dict(FAST_DETECTOR), label_delay_days=7.0),
        labelled["records"],
    )
    np.testing.assert_allclose(run.test_scores[OURS], reference.test_scores[OURS])

    shorter = training.train_detector(
        dataset, tmp_path / "m3", tmp_path / "r3", options, label_delay_days=3.0
    )
    assert shorter.split.label_delay_days == 3.0
    # A shorter delay keeps more of the rows before the cut-off.
    known = run.split.train | run.split.validation
    assert (shorter.split.train | shorter.split.validation).sum() > known.sum()

    # Merchant risk off: trained as without a labels table.
    plain = training.train_detector(
        dataset, tmp_path / "m0", tmp_path / "r0", options, merchant_risk=False
    )
    assert plain.ours.feature_names_ == tuple(features.TRANSACTION_FEATURES)
    assert plain.split.label_delay_days == 0.0


def test_without_labels_the_train_task_trains_as_before(tmp_path: Path) -> None:
    data.ingest(data.IngestRequest(synthetic_users=150, synthetic_days=45), tmp_path / "raw")
    assert data.validate(tmp_path / "raw", tmp_path / "dataset").passed
    options = training.TrainingOptions(params=dict(FAST_DETECTOR))
    run = training.train_detector(tmp_path / "dataset", tmp_path / "m", tmp_path / "r", options)
    assert run.ours.feature_names_ == tuple(features.TRANSACTION_FEATURES)
    assert run.split.label_delay_days == 0.0 and run.facts["merchant_features"] is False
    training.build_features(tmp_path / "dataset", tmp_path / "tx.parquet", tmp_path / "u.parquet")
    columns = set(pd.read_parquet(tmp_path / "tx.parquet").columns)
    assert not columns & set(SERVED_MERCHANT_FEATURES)


def test_a_champion_reading_merchant_risk_is_rescored_on_the_same_rows(
    labelled: dict[str, Any], tmp_path: Path
) -> None:
    """build_features writes the as-of merchant risk: the champion is scored on the
    challenger's test rows with it, so the same model gets the same metrics."""
    dataset = labelled["root"] / "dataset"
    tx_path, users_path = tmp_path / "tx.parquet", tmp_path / "users.parquet"
    training.build_features(dataset, tx_path, users_path)
    options = training.TrainingOptions(params=dict(FAST_DETECTOR))
    training.train_detector(dataset, tmp_path / "m", tmp_path / "run", options)
    det = training.load_run(tmp_path / "run", AnomalyRun)
    tx = pd.read_parquet(tx_path)
    champion = evaluation.ChampionModel(compile_model(det.ours), "4")
    result = evaluation.champion_detector_metrics(champion, det, tx)
    assert result["source"] == evaluation.RESCORED
    written = read_dataset(labelled["root"] / "dataset").transactions
    assert tx[TRANSACTION_ID].tolist() == written[TRANSACTION_ID].tolist()
    records = read_label_records(dataset, written)
    assert records is not None
    expected = merchant_features(written, records)[list(SERVED_MERCHANT_FEATURES)]
    np.testing.assert_allclose(tx[list(SERVED_MERCHANT_FEATURES)], expected)
    assert det.test_labels is not None
    challenger = binary_metrics(det.test_labels, det.test_scores[OURS], k=ANOMALY_K)
    assert result["pr_auc"] == pytest.approx(challenger["pr_auc"])


def _write(folder: Path, table: pa.Table) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / LABELS_FILE)
    return folder


UTC_TIMES = pa.array([pd.Timestamp("2026-01-02", tz="UTC")], pa.timestamp("us", tz="UTC"))


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({TRANSACTION_ID: ["t1"], IS_FRAUD: [True]}, r"lacks the column\(s\) \['labelled_at'\]"),
        (
            {TRANSACTION_ID: ["t1"], IS_FRAUD: ["yes"], "labelled_at": UTC_TIMES},
            r"column 'is_fraud' must hold true/false, found string",
        ),
        (
            {TRANSACTION_ID: [7], IS_FRAUD: [True], "labelled_at": UTC_TIMES},
            r"column 'transaction_id' must hold strings, found int64",
        ),
        (
            {
                TRANSACTION_ID: ["t1"],
                IS_FRAUD: [True],
                "labelled_at": pa.array([pd.Timestamp("2026-01-02")], pa.timestamp("us")),
            },
            r"column 'labelled_at' must hold UTC timestamps",
        ),
        (
            {
                TRANSACTION_ID: ["t1"],
                IS_FRAUD: [True],
                "labelled_at": pa.array([None], pa.timestamp("us", tz="UTC")),
            },
            r"column 'labelled_at' has 1 missing value",
        ),
    ],
)
def test_a_bad_label_file_names_the_file_and_column(
    tmp_path: Path, columns: dict[str, Any], message: str
) -> None:
    folder = _write(tmp_path / "dataset", pa.table(columns))
    with pytest.raises(FinriskError, match=message) as caught:
        read_label_file(folder)
    assert str(folder / LABELS_FILE) in str(caught.value)


def test_a_label_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    (tmp_path / LABELS_FILE).write_bytes(b"not parquet at all")
    with pytest.raises(FinriskError, match=r"labels\.parquet is not a readable Parquet file"):
        read_label_file(tmp_path)


def test_the_train_task_refuses_a_bad_label_file(labelled: dict[str, Any], tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    shutil.copytree(labelled["root"] / "dataset", dataset)
    table = pq.read_table(dataset / LABELS_FILE).drop_columns([IS_FRAUD])
    pq.write_table(table, dataset / LABELS_FILE)
    options = training.TrainingOptions(params=dict(FAST_DETECTOR))
    with pytest.raises(FinriskError, match=r"labels\.parquet lacks the column\(s\) \['is_fraud'\]"):
        training.train_detector(dataset, tmp_path / "m", tmp_path / "r", options)
