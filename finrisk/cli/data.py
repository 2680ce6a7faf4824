"""`finrisk data generate|validate`: make a synthetic dataset, check a file against the schema."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from finrisk.errors import FinriskError
from finrisk.io import (
    TRANSACTIONS_FILE,
    USERS_FILE,
    is_dataset_dir,
    read_table,
    write_dataset,
)
from finrisk.parsing import parse_transactions
from finrisk.schema import load_schema
from finrisk.synthetic import (
    BENCHMARK_DAYS,
    BENCHMARK_SEED,
    BENCHMARK_USERS,
    DEFAULT_START,
    generate,
)
from finrisk.synthetic.drift import SCENARIOS
from finrisk.synthetic.labels import synthetic_labels, write_labels
from finrisk.validation import ValidationReport, check_parsed, validate_users


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = subparsers.add_parser("data", help="generate synthetic data, validate data files")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    gen = sub.add_parser(
        "generate",
        help="write a synthetic labelled dataset (transactions, users, manifest)",
        description="Simulate bank customers with a latent financial health, labelled fraud "
        "episodes and a per-user risk outcome. The same arguments give identical files.",
    )
    gen.add_argument(
        "--users",
        type=int,
        default=BENCHMARK_USERS,
        help=f"number of customers (default {BENCHMARK_USERS})",
    )
    gen.add_argument(
        "--days",
        type=int,
        default=BENCHMARK_DAYS,
        help=f"days simulated (default {BENCHMARK_DAYS})",
    )
    gen.add_argument(
        "--seed", type=int, default=BENCHMARK_SEED, help=f"random seed (default {BENCHMARK_SEED})"
    )
    gen.add_argument(
        "--start", default=DEFAULT_START, help=f"first day, UTC (default {DEFAULT_START})"
    )
    gen.add_argument("--out", required=True, type=Path, help="dataset directory to write")
    gen.add_argument(
        "--labels",
        type=Path,
        metavar="PATH",
        help="also write the confirmed-label stream (JSON lines, by labelled_at): what became "
        "of the transactions and when it was known (docs/synthetic-data.md)",
    )
    gen.add_argument(
        "--scenario",
        choices=SCENARIOS,
        help="drift: from --drift-day, a fraud kind never seen before (gift_card_scam) and a "
        "spending shift of half the users; hard: legitimate look-alikes of fraud and harder "
        "fraud (docs/synthetic-data.md, 'The drift scenario', 'The hard scenario')",
    )
    gen.add_argument(
        "--drift-day",
        type=int,
        metavar="D",
        help="first drifted day, 0-based (default: half-way through --days)",
    )
    gen.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    gen.set_defaults(handler=run_generate)

    val = sub.add_parser(
        "validate",
        help="check a transaction or user table against the schema",
        description="Report every problem of a CSV/Parquet file or dataset directory. Exit "
        "status: 0 valid (warnings allowed), 1 schema errors, 2 unreadable input.",
    )
    val.add_argument("path", type=Path, help="CSV/TSV/Parquet file or dataset directory")
    val.add_argument("--schema", type=Path, help="schema file overriding the packaged one")
    val.add_argument(
        "--table",
        choices=("transactions", "users"),
        default=None,
        help="what a file holds (default transactions; a dataset directory checks both)",
    )
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    val.set_defaults(handler=run_validate)


def run_generate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    transactions, users, manifest = generate(
        args.users,
        args.days,
        args.seed,
        args.start,
        scenario=args.scenario,
        drift_day=args.drift_day,
        progress=not args.no_progress,
    )
    generated = time.perf_counter() - started
    written = write_dataset(args.out, transactions, users, manifest)
    summary: dict[str, Any] = {
        "out": str(args.out),
        **{k: v for k, v in written.items() if k != "files"},
        "generate_seconds": round(generated, 2),
    }
    if args.labels is not None:
        labels = synthetic_labels(transactions, args.seed)
        write_labels(args.labels, labels)
        summary["labels"] = {"path": str(args.labels), "records": len(labels)}
    summary["total_seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, indent=2))
    return 0


def run_validate(args: argparse.Namespace) -> int:
    schema = load_schema(args.schema)
    reports: list[ValidationReport] = []
    if args.path.is_dir() and args.table is None:
        if not is_dataset_dir(args.path):
            raise FinriskError(
                f"{args.path} is a directory without {TRANSACTIONS_FILE}: give a CSV/Parquet "
                "file or a dataset directory made by `finrisk data generate`"
            )
        tx_file = args.path / TRANSACTIONS_FILE
        reports.append(
            check_parsed(parse_transactions(read_table(tx_file), schema), schema, str(tx_file))
        )
        users_file = args.path / USERS_FILE
        if users_file.is_file():
            reports.append(validate_users(read_table(users_file), schema, str(users_file)))
    else:
        table = args.table or "transactions"
        file = args.path
        if file.is_dir():
            file = file / (USERS_FILE if table == "users" else TRANSACTIONS_FILE)
        raw = read_table(file)
        if table == "users":
            reports.append(validate_users(raw, schema, str(file)))
        else:
            reports.append(check_parsed(parse_transactions(raw, schema), schema, str(file)))

    ok = all(r.ok for r in reports)
    if args.json:
        print(json.dumps({"ok": ok, "reports": [r.to_dict() for r in reports]}, indent=2))
    else:
        print("\n".join(r.format() for r in reports))
    if not ok:
        print("finrisk: data does not fit the schema", file=sys.stderr)
    return 0 if ok else 1
