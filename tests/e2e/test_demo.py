"""`finrisk demo` at small scale, its summary checked against the data and the real outputs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import orjson
import pytest

from finrisk.bigquery_client import bigquery_client
from finrisk.demo.summary import format_summary
from finrisk.synthetic import generate
from tests.support.demo_run import STREAM, DemoRun
from tests.support.kafka_reading import count_at_least, read_topic

pytestmark = pytest.mark.e2e


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_curls() -> list[str]:
    """Every `curl` command in the README's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip().startswith("curl "):
                commands.append(command.strip())
    return commands


def _run_readme_curl(command: str, predictor_url: str) -> dict[str, object]:
    command = command.replace("http://127.0.0.1:8080", predictor_url)
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (command, result.stderr)
    answer: dict[str, object] = orjson.loads(result.stdout)
    return answer


def test_demo_summary_matches_the_data(demo_run: DemoRun) -> None:
    settings, summary = demo_run.settings, demo_run.summary
    answers = [_run_readme_curl(cmd, settings.predictor.url) for cmd in _readme_curls()]

    # The README's curl examples work against the predictor the demo left running.
    assert len(answers) >= 3
    for answer in answers:
        assert "error" not in answer, answer
        assert {"predictions", "outputs", "inputs"} & answer.keys(), answer

    stream, _, _ = generate(**STREAM)
    s = summary.stream
    assert s.transactions_produced == len(stream)
    assert s.scored == len(stream) and s.missing == 0
    assert s.true_fraud == int(stream["is_fraud"].sum()) > 0
    assert s.users == stream["user_id"].nunique()
    assert sum(s.risk_bands.values()) == s.users

    # The summary's counts, recomputed from the scored topic itself.
    records = [
        r.json()
        for r in read_topic(
            settings.kafka.bootstrap_servers,
            summary.scored_topic,
            until=count_at_least(len(stream)),
            timeout_s=120,
        )
    ]
    prefix = f"{summary.run_id}-"
    fraud = {prefix + tx for tx in stream.loc[stream["is_fraud"] == 1, "transaction_id"]}
    flagged = {str(r["transaction_id"]) for r in records if r["is_anomaly"]}
    assert s.flagged == len(flagged)
    assert s.true_positives == len(flagged & fraud)
    assert s.recall == pytest.approx(len(flagged & fraud) / len(fraud))
    # The retrained detector finds injected fraud far above chance on customers it never saw.
    assert s.recall is not None and s.recall > 0.5
    assert s.precision is not None and s.precision > 0.5

    # Every anomaly is in the BigQuery table, once.
    project, dataset_table = summary.anomaly_table.split(" ")[0].split(".", 1)
    client = bigquery_client(project, settings.bigquery.endpoint)
    rows = client.query(f"SELECT transaction_id FROM `{project}.{dataset_table}`").result()
    logged = [row["transaction_id"] for row in rows]
    assert sorted(logged) == sorted(flagged)
    assert summary.anomalies_logged == len(flagged)

    text = format_summary(summary)
    assert f"scored          {len(stream)} of {len(stream)}" in text
    assert "predictor serving the champions" in demo_run.log
    # It ends with the dashboard on this run (tests/e2e/test_dashboard.py looks at it).
    assert summary.urls["dashboard"] == settings.dashboard.url
    assert f"dashboard       {settings.dashboard.url}" in text
