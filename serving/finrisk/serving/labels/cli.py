"""`finrisk labels produce|load|report`: the confirmed-label stream, its warehouse loader and
the realized metrics (docs/monitoring.md, "Confirmed labels").

Settings come from FINRISK_LABELS__* variables or the `labels:` section of the FINRISK_CONFIG
file; each also has a flag (finrisk.settings.LabelsSettings). Kafka is reached the way the
bridge reaches it (its bootstrap_servers and security settings).
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from finrisk.cli.settings_flags import add_flags, given, overlaid
from finrisk.errors import FinriskError
from finrisk.settings import BridgeSettings, LabelsSettings, Settings

if TYPE_CHECKING:  # the CLI loads every command's module: BigQuery only when used
    from finrisk.monitoring.realized import RealizedDay

_REPORT_SETTINGS = (
    "bigquery_project",
    "bigquery_dataset",
    "labels_table",
    "scored_table",
    "bigquery_endpoint",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    labels = subparsers.add_parser(
        "labels", help="confirmed labels: stream them, load them into BigQuery, report"
    )
    sub = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)

    text = "send label records to the labels topic, keyed by user, in labelled_at order"
    produce = sub.add_parser("produce", help=text, description=text)
    produce.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="PATH",
        help="a JSON-lines label file (finrisk data generate --labels); default: the labels of "
        "synthetic data made with --users/--days/--seed",
    )
    produce.add_argument("--users", type=int, default=1000, help="synthetic users (default 1000)")
    produce.add_argument("--days", type=int, default=60, help="days simulated (default 60)")
    produce.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    produce.add_argument("--topic", help="topic (default: labels_topic)")
    produce.add_argument(
        "--rate", type=float, default=0.0, help="records per second; 0 (default): at once"
    )
    add_flags(produce, BridgeSettings, only=("bootstrap_servers",))
    produce.set_defaults(handler=_produce)

    text = "load the labels and scored topics into BigQuery, at least once"
    load = sub.add_parser("load", help=text, description=text)
    add_flags(
        load,
        LabelsSettings,
        title="settings (each also FINRISK_LABELS__<NAME> or labels: in the FINRISK_CONFIG "
        "file; '' stands for none)",
    )
    add_flags(load, BridgeSettings, only=("bootstrap_servers",))
    load.add_argument(
        "--once", action="store_true", help="stop once every partition is read to its end"
    )
    load.add_argument("--max-records", type=int, help="stop after this many records")
    load.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    load.set_defaults(handler=_load)

    text = "realized recall and alert precision per model version and day"
    report = sub.add_parser("report", help=text, description=text)
    add_flags(report, LabelsSettings, only=_REPORT_SETTINGS)
    report.add_argument("--since", type=date.fromisoformat, help="first day (YYYY-MM-DD)")
    report.add_argument("--until", type=date.fromisoformat, help="last day (YYYY-MM-DD)")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(handler=_report)


def labels_settings(args: argparse.Namespace) -> Settings:
    """Settings with the flags given on the command line laid over env and file."""
    settings = Settings()
    labels = overlaid(settings.labels, given(args, LabelsSettings))
    bridge = overlaid(settings.bridge, given(args, BridgeSettings, only=("bootstrap_servers",)))
    return settings.model_copy(update={"labels": labels, "bridge": bridge})


def _produce(args: argparse.Namespace) -> int:
    from finrisk.serving.bridge import kafka_config
    from finrisk.serving.bridge.producer import produce
    from finrisk.synthetic.labels import read_labels, synthetic_labels

    if args.rate < 0:
        raise FinriskError(f"--rate must be >= 0 (0: as fast as possible), got {args.rate}")
    settings = labels_settings(args)
    if args.source is not None:
        records = read_labels(args.source)
        records.sort(key=lambda r: (r.labelled_at, r.transaction_id))
    else:
        from finrisk.synthetic import generate

        transactions, _users, _manifest = generate(args.users, args.days, args.seed)
        records = synthetic_labels(transactions, args.seed)
    topic = args.topic or settings.labels.labels_topic
    kafka_config.ensure_topic(settings, topic)
    stats = produce(
        kafka_config.client_config(settings),
        topic,
        [(record.key, record.to_json()) for record in records],
        rate=args.rate or None,
    )
    print(json.dumps({"topic": topic, **stats.as_dict()}))
    return 0


def _load(args: argparse.Namespace) -> int:
    from finrisk.serving.labels.loader import load

    if args.max_records is not None and args.max_records < 1:
        raise FinriskError(f"--max-records must be at least 1, got {args.max_records}")
    try:
        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    except ValueError:
        raise FinriskError(f"--log-level {args.log_level!r} is not a logging level") from None
    stats = load(labels_settings(args), once=args.once, max_records=args.max_records)
    print(json.dumps(stats.as_dict()))
    return 0


def _report(args: argparse.Namespace) -> int:
    from finrisk.bigquery_client import bigquery_client
    from finrisk.monitoring.realized import realized_metrics
    from finrisk.serving.labels.loader import tables_of

    settings = labels_settings(args)
    tables = tables_of(settings)
    client = bigquery_client(tables.project, settings.labels.bigquery_endpoint)
    try:
        days = realized_metrics(
            client,
            f"{tables.project}.{tables.dataset}",
            since=args.since,
            until=args.until,
            labels_table=tables.labels,
            scored_table=tables.scored,
        )
    finally:
        client.close()
    if args.json:
        print(json.dumps([day.as_dict() for day in days], indent=2))
        return 0
    print(format_table(days))
    return 0


def format_table(days: list[RealizedDay]) -> str:
    """One line per role, version and day; '-' where a ratio has no denominator."""

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    header = (
        f"{'day':<10} {'role':<10} {'version':<12} {'scored':>8} {'labelled':>8} "
        f"{'fraud':>6} {'alerted':>7} {'true':>5} {'recall':>6} {'prec.':>6} {'delay d':>7}"
    )
    lines = [header]
    for d in days:
        delay = "-" if d.median_label_delay_days is None else f"{d.median_label_delay_days:.1f}"
        lines.append(
            f"{d.day.isoformat():<10} {d.role:<10} {d.model_version:<12} {d.scored:>8} "
            f"{d.labelled:>8} {d.confirmed_fraud:>6} {d.alerted:>7} {d.true_alerts:>5} "
            f"{ratio(d.recall):>6} {ratio(d.alert_precision):>6} {delay:>7}"
        )
    if not days:
        lines.append("(no scored transactions in the range)")
    return "\n".join(lines)
