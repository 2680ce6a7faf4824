"""Recommendations on live traffic: a `finrisk bridge` with `recommendations: 2` against the
real predictor; its scored records carry them for MEDIUM and HIGH users (null for LOW ones)
and score every transaction as the clean run (whose default, off, carries none) did."""

from __future__ import annotations

from pathlib import Path

import pytest

from finrisk.models.bands import BAND_NAMES
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs

pytestmark = pytest.mark.integration

RANK = {name: i for i, name in enumerate(BAND_NAMES)}


def test_scored_records_carry_recommendations_for_elevated_users_when_asked(
    kafka: Service,
    stack_settings: Settings,
    served: runs.Served,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    reference: runs.Reference,
    logs: Path,
) -> None:
    assert all(doc["recommendations"] is None for doc in reference.by_id.values())  # default off
    topic = runs.topic(stack_settings, runs.unique("recs-in"))
    name = runs.unique("recs")
    produce(kafka_config.client_config(stack_settings), topic, transactions)
    with runs.bridge(
        stack_settings, served, topic, name, logs, recommendations=2
    ).start() as bridge:
        scored = runs.scored_until_all(runs.bootstrap(stack_settings), name, valid_ids)
        assert bridge.terminate() == 0
    runs.same_scores(scored, reference)  # asking for them changes no score
    docs = [r.json() for r in scored]
    found = 0
    for doc in docs:
        recs = doc["recommendations"]
        if doc["risk_band"] == "LOW":
            assert recs is None
            continue
        assert isinstance(recs, list) and len(recs) <= 2
        for rec in recs:
            assert RANK[rec["band"]] < RANK[doc["risk_band"]]
            assert rec["probability"] < doc["risk_probability"]
            assert rec["actions"] and rec["changes"] and rec["cost"] > 0
            found += 1
    assert found, "no elevated record got a recommendation"
