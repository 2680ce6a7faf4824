"""The label stream of a synthetic dataset: what became of each transaction, and when it was
known (docs/synthetic-data.md, "Confirmed labels").

Outcomes arrive late, as at a bank:
- a fraud is confirmed by an investigation (`fraud_confirmed`, 1 to 5 days after the
  transaction) or reversed by the card network on the cardholder's claim (`chargeback`, 10 to 60
  days: the claim window, then the network's process); `FRAUD_UNLABELLED_SHARE` of frauds are
  never labelled (nobody noticed), so realized recall counts only the frauds someone caught;
- a small share of legitimate transactions is disputed and resolved as `legitimate` (2 to 30
  days): most legitimate transactions never get a label at all.

Delays are uniform over their ranges, drawn per transaction. The draws use their own random
generator, seeded from the dataset's seed and a fixed stream number, so labels are a pure
function of (transactions, seed) and adding them changed nothing the generator makes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.labels import (
    CHARGEBACK,
    FRAUD_CONFIRMED,
    LEGITIMATE,
    LabelError,
    LabelRecord,
    parse_label,
)
from finrisk.schema import IS_FRAUD, TIMESTAMP, TRANSACTION_ID, USER_ID

SOURCE = "synthetic"
# Kept apart from the generator's own stream: numpy spawns independent streams from a seed
# sequence, and [seed, this] is one the generator never draws from.
LABEL_STREAM = 1_000_003

FRAUD_UNLABELLED_SHARE = 0.05
# Of the frauds that are labelled: the rest are confirmed by an investigation.
CHARGEBACK_SHARE = 0.35
FRAUD_CONFIRMED_DELAY_DAYS = (1.0, 5.0)
CHARGEBACK_DELAY_DAYS = (10.0, 60.0)
LEGITIMATE_LABELLED_SHARE = 0.002
LEGITIMATE_DELAY_DAYS = (2.0, 30.0)

_DAY_S = 86_400


def synthetic_labels(transactions: pd.DataFrame, seed: int) -> list[LabelRecord]:
    """The label records of `transactions` (with is_fraud), in the order they become known:
    by labelled_at, then transaction id."""
    missing = [c for c in (TRANSACTION_ID, USER_ID, TIMESTAMP, IS_FRAUD) if c not in transactions]
    if missing:
        raise FinriskError(f"labels need the transactions' columns {missing}")
    rng = np.random.default_rng([seed, LABEL_STREAM])
    n = len(transactions)
    fraud = transactions[IS_FRAUD].to_numpy() == 1
    # One draw of each kind per transaction, whatever its label: a transaction's outcome does
    # not depend on how many rows came before it of the other kind.
    roll = rng.random(n)
    kind_roll = rng.random(n)
    position = rng.random(n)

    outcome = np.full(n, "", dtype=object)
    low = np.zeros(n)
    high = np.zeros(n)
    labelled_fraud = fraud & (roll >= FRAUD_UNLABELLED_SHARE)
    chargeback = labelled_fraud & (kind_roll < CHARGEBACK_SHARE)
    confirmed = labelled_fraud & ~chargeback
    legitimate = ~fraud & (roll < LEGITIMATE_LABELLED_SHARE)
    for mask, name, (lo, hi) in (
        (confirmed, FRAUD_CONFIRMED, FRAUD_CONFIRMED_DELAY_DAYS),
        (chargeback, CHARGEBACK, CHARGEBACK_DELAY_DAYS),
        (legitimate, LEGITIMATE, LEGITIMATE_DELAY_DAYS),
    ):
        outcome[mask] = name
        low[mask], high[mask] = lo, hi
    # Whole seconds: the records are written with second precision like the transactions.
    delay_s = np.round((low + (high - low) * position) * _DAY_S).astype(np.int64)

    chosen = np.flatnonzero(outcome != "")
    event = pd.DatetimeIndex(transactions[TIMESTAMP].to_numpy()[chosen])
    event = event.tz_localize("UTC") if event.tz is None else event.tz_convert("UTC")
    labelled = event + pd.to_timedelta(delay_s[chosen], unit="s")
    ids = transactions[TRANSACTION_ID].to_numpy()[chosen]
    users = transactions[USER_ID].to_numpy()[chosen]
    records = [
        LabelRecord(
            transaction_id=str(tx),
            user_id=str(user),
            event_time=when.to_pydatetime(),
            outcome=str(kind),
            labelled_at=known.to_pydatetime(),
            source=SOURCE,
        )
        for tx, user, when, kind, known in zip(
            ids, users, event, outcome[chosen], labelled, strict=True
        )
    ]
    records.sort(key=lambda r: (r.labelled_at, r.transaction_id))
    return records


def write_labels(path: Path, records: list[LabelRecord]) -> None:
    """JSON lines: one label record per line, as on the labels topic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for record in records:
            out.write(record.to_json() + b"\n")


def read_labels(path: Path) -> list[LabelRecord]:
    """A JSON-lines label file; an error names the line that is not a label record."""
    records = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(parse_label(line))
            except LabelError as exc:
                raise FinriskError(f"{path}, line {number}: {exc}") from None
    return records
