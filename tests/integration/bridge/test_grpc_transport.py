"""The bridge over gRPC (`transport: grpc`): a `finrisk bridge` calling the real predictor's
Open Inference Protocol gRPC port scores every transaction as the clean run over REST did,
and its inference calls did go over gRPC (the predictor counts them by protocol)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs

pytestmark = pytest.mark.integration


def _grpc_calls(url: str, model: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = (
        rf'finrisk_predictor_requests_total{{model="{re.escape(model)}",protocol="grpc",'
        rf'status="200"}} (\S+)'
    )
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_a_bridge_over_grpc_scores_as_the_rest_bridge(
    kafka: Service,
    stack_settings: Settings,
    served: runs.Served,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    reference: runs.Reference,
    logs: Path,
) -> None:
    before = _grpc_calls(served.predictor.url, served.models.detector)
    topic = runs.topic(stack_settings, runs.unique("grpc-in"))
    name = runs.unique("grpc")
    produce(kafka_config.client_config(stack_settings), topic, transactions)
    with runs.bridge(
        stack_settings,
        served,
        topic,
        name,
        logs,
        transport="grpc",
        predictor_grpc_port=served.predictor.grpc_port,
    ).start() as bridge:
        scored = runs.scored_until_all(runs.bootstrap(stack_settings), name, valid_ids)
        assert bridge.terminate() == 0
    assert sorted(runs.ids(scored)) == sorted(valid_ids)
    runs.same_scores(scored, reference)
    assert _grpc_calls(served.predictor.url, served.models.detector) > before
    assert _grpc_calls(served.predictor.url, served.models.risk) > 0
