"""The shadow challenger on live traffic: a second `finrisk serve` on the challenger alias,
scored beside the champion on every batch; its verdicts in the scored records and monitoring,
never in alerts; the stream goes on, every transaction scored, when the challenger goes down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from finrisk import registry
from finrisk.bench.local_processes import EXPERIMENT, PredictorProcess
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import read_topic

pytestmark = pytest.mark.integration

CHALLENGER = "challenger"


@pytest.fixture(scope="module")
def challenger(served: runs.Served, logs: Path) -> Iterator[tuple[PredictorProcess, str]]:
    """The champion's detector registered again as a new version under the challenger alias,
    served by a predictor of its own: its scores are the champion's, its version is not."""
    name = served.models.detector
    _, uri = registry.log_model(
        served.detector, "detector", tracking_uri=served.tracking_uri, experiment=EXPERIMENT
    )
    version = registry.register(uri, name, {"purpose": "shadow"}, tracking_uri=served.tracking_uri)
    registry.set_alias(name, CHALLENGER, version, tracking_uri=served.tracking_uri)
    # The predictor serves both kinds at its alias; the risk model's challenger is its champion.
    risk = served.models.risk
    registry.set_alias(
        risk, CHALLENGER, served.models.versions[risk], tracking_uri=served.tracking_uri
    )
    predictor = PredictorProcess(
        served.models, served.tracking_uri, logs / "challenger.log", alias=CHALLENGER
    ).start()
    try:
        yield predictor, str(version)
    finally:
        predictor.stop()


def test_the_challenger_is_shadowed_and_its_outage_stops_nothing(
    kafka: Service,
    stack_settings: Settings,
    served: runs.Served,
    challenger: tuple[PredictorProcess, str],
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    reference: runs.Reference,
    logs: Path,
) -> None:
    predictor, version = challenger
    champion_version = served.models.versions[served.models.detector]
    assert version != champion_version
    topic = runs.topic(stack_settings, runs.unique("shadow-in"))
    name = runs.unique("shadow")
    half = len(transactions) // 2
    produce(kafka_config.client_config(stack_settings), topic, transactions[:half])
    bridge = runs.bridge(
        stack_settings,
        served,
        topic,
        name,
        logs,
        challenger_url=predictor.url,
        monitoring_window_transactions=500,
    ).start()
    with bridge:
        first = runs.scored_until_all(runs.bootstrap(stack_settings), name, valid_ids[:half])
        predictor.stop()  # the challenger goes away mid-stream
        produce(kafka_config.client_config(stack_settings), topic, transactions[half:])
        scored = runs.scored_until_all(runs.bootstrap(stack_settings), name, valid_ids)
        monitoring = read_topic(runs.bootstrap(stack_settings), f"{name}.monitoring")
        assert bridge.terminate() == 0

    docs = {r.json()["transaction_id"]: r.json() for r in scored}
    assert sorted(docs) == sorted(valid_ids)  # every transaction scored, none twice
    # The champion's verdicts are the clean run's: the shadow changed nothing.
    runs.same_scores(scored, reference)
    before = [docs[r.json()["transaction_id"]] for r in first]
    for doc in before:
        assert doc["challenger_version"] == version
        assert doc["challenger_score"] == pytest.approx(doc["anomaly_score"], rel=1e-9)
        assert doc["challenger_is_anomaly"] == doc["is_anomaly"]
    # After the outage the batches go on without challenger verdicts.
    after = [docs[i] for i in valid_ids[half:]]
    assert after and all(doc["challenger_version"] is None for doc in after[-100:])
    # Its windows are its own, role challenger; alerts stay the champion's alone.
    roles = {(d["role"], d["model_version"]) for d in (r.json() for r in monitoring)}
    assert (CHALLENGER, version) in roles and ("champion", champion_version) in roles
