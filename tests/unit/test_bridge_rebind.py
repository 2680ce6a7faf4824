"""A running bridge whose champion is replaced by a version with other inputs (docs/bridge.md,
"When the champion changes"): bound again by name, never scored in the old column order."""

from __future__ import annotations

import signal
from collections.abc import Callable

import httpx
import numpy as np
import numpy.typing as npt
import orjson
import pytest

from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.serving.bridge import app
from finrisk.serving.bridge.binding import FeaturesNotComputed, RestartToBind
from finrisk.serving.bridge.runtime import RunStats
from finrisk.serving.bridge.scoring import V2Scorer
from finrisk.serving.bridge.shadow import Shadow
from finrisk.serving.bridge.v2_client import EndpointUnavailable, RequestRejected
from finrisk.settings import Settings
from tests.support.mock_predictor import mock_client

TX = tuple(TRANSACTION_FEATURES)
MERCHANT = (*TX, *SERVED_MERCHANT_FEATURES)


class Registry:
    """A predictor serving one version of each model at a time, as finrisk's does: metadata
    lists the served version's inputs, an answer names the version that computed it, and a
    matrix of the wrong width is refused (400). The detector's score is the row's value of its
    first input, the risk model's probability that of its first input / 100: a column out of
    place shows in the scores."""

    def __init__(self, detector: dict[str, tuple[str, ...]], risk: dict[str, tuple[str, ...]]):
        self.versions = {"det": detector, "risk": risk}
        self.served = {"det": min(detector), "risk": min(risk)}
        # Called before each inference answer: lets a test move an alias mid-call.
        self.before_infer: Callable[[str], None] = lambda name: None
        self.infers: list[tuple[str, str]] = []  # (model, version) of each answer
        self.metadata_reads = 0
        self.refuse_rows = False  # answer every inference 400 (rows the model rejects)

    def order(self, name: str) -> tuple[str, ...]:
        return self.versions[name][self.served[name]]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2":
            return httpx.Response(200, json={"name": "stub", "extensions": []})
        name = request.url.path.split("/")[3]
        if request.method == "GET":
            self.metadata_reads += 1
            inputs = [{"name": f, "datatype": "FP64", "shape": [-1]} for f in self.order(name)]
            versions = [self.served[name]]
            return httpx.Response(200, json={"name": name, "versions": versions, "inputs": inputs})
        self.before_infer(name)
        if self.refuse_rows:
            return httpx.Response(400, json={"error": "row 2 is bad"})
        version, order = self.served[name], self.order(name)
        (tensor,) = orjson.loads(request.content)["inputs"]
        rows, width = tensor["shape"]
        if width != len(order):
            return httpx.Response(400, json={"error": f"expected {len(order)} features"})
        x = np.asarray(tensor["data"], dtype=np.float64).reshape(rows, width)
        self.infers.append((name, version))
        if name in ("det", "challenger"):
            outputs = [
                {"name": "score", "datatype": "FP64", "shape": [rows], "data": x[:, 0].tolist()},
                {"name": "is_anomaly", "datatype": "BOOL", "shape": [rows], "data": [False] * rows},
            ]
        else:
            p = (x[:, 0] / 100).tolist()
            outputs = [
                {"name": "probability", "datatype": "FP64", "shape": [rows], "data": p},
                {"name": "band", "datatype": "BYTES", "shape": [rows], "data": ["LOW"] * rows},
            ]
        return httpx.Response(
            200, json={"model_name": name, "model_version": version, "outputs": outputs}
        )


def _matrices(
    n: int = 4, tx_columns: tuple[str, ...] = TX
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    # Column j holds j + row / 10: each feature's value tells which feature it is.
    tx = np.arange(len(tx_columns), dtype=np.float64) + np.arange(n)[:, None] / 10
    users = np.arange(len(USER_FEATURES), dtype=np.float64) + np.arange(n)[:, None] / 10
    return tx, users


def _expected(matrix: npt.NDArray[np.float64], have: tuple[str, ...], first: str) -> list[float]:
    return matrix[:, have.index(first)].tolist()


def _scorer(registry: Registry, **kwargs: object) -> V2Scorer:
    client = mock_client(registry)
    return V2Scorer(client, client, "det", "risk", reasons="none", **kwargs)  # type: ignore[arg-type]


REVERSED = tuple(reversed(TX))
ROTATED = (*TX[5:], *TX[:5])


@pytest.mark.parametrize(
    "new_order",
    [ROTATED, TX[1:], (*TX[3:10], *TX[:3])],
    ids=["same-features-other-order", "one-feature-fewer", "a-subset"],
)
def test_a_champion_replaced_by_one_with_other_inputs_scores_by_its_own_order(
    new_order: tuple[str, ...],
) -> None:
    registry = Registry({"1": REVERSED, "2": new_order}, {"1": USER_FEATURES})
    scorer = _scorer(registry)
    tx, users = _matrices()
    before = scorer.score(tx, users)
    assert [s.anomaly_score for s in before] == _expected(tx, TX, REVERSED[0])
    registry.served["det"] = "2"  # the alias moved and the predictor reloaded
    after = scorer.score(tx, users)  # neither refused (then split into dead letters) nor wrong
    assert [s.anomaly_score for s in after] == _expected(tx, TX, new_order[0])
    assert {s.detector_version for s in after} == {"2"}
    scorer.close()


def test_a_batch_answered_by_a_version_other_than_the_one_bound_is_scored_again() -> None:
    # The alias moves between reading the metadata and scoring: same width, other order.
    registry = Registry({"1": REVERSED, "2": ROTATED}, {"1": USER_FEATURES})
    scorer = _scorer(registry)
    tx, users = _matrices()
    scorer.score(tx, users)

    def move(name: str) -> None:
        if name == "det" and registry.served["det"] == "1" and len(registry.infers) >= 2:
            registry.served["det"] = "2"

    registry.before_infer = move
    registry.served["det"] = "1"
    scores = scorer.score(tx, users)
    assert [s.anomaly_score for s in scores] == _expected(tx, TX, ROTATED[0])
    assert {s.detector_version for s in scores} == {"2"}
    # The answer of version 2 to rows in version 1's order was thrown away, then rebound.
    assert [v for name, v in registry.infers if name == "det"] == ["1", "2", "2"]
    scorer.close()


def test_the_risk_model_is_bound_again_too() -> None:
    risk_new = tuple(reversed(USER_FEATURES[:7]))
    registry = Registry({"1": TX}, {"1": USER_FEATURES[:5], "2": risk_new})
    scorer = _scorer(registry)
    tx, users = _matrices()
    scorer.score(tx, users)
    registry.served["risk"] = "2"
    scores = scorer.score(tx, users)
    expected = [v / 100 for v in _expected(users, USER_FEATURES, risk_new[0])]
    assert [s.risk_probability for s in scores] == pytest.approx(expected)
    assert {s.risk_model_version for s in scores} == {"2"}
    scorer.close()


def test_a_whole_batch_refused_rereads_the_metadata_before_rows_are_dead_lettered() -> None:
    registry = Registry({"1": TX, "2": TX}, {"1": USER_FEATURES})
    scorer = _scorer(registry)
    tx, users = _matrices()
    scorer.score(tx, users)
    reads = registry.metadata_reads
    # A refusal with the same version served: the rows are at fault, the loop splits them.
    registry.refuse_rows = True
    with pytest.raises(RequestRejected):
        scorer.score(tx, users)
    assert registry.metadata_reads > reads  # asked before giving the rows up
    scorer.close()


def test_a_detector_that_reads_merchant_risk_restarts_a_bridge_started_without_it() -> None:
    registry = Registry({"1": TX, "2": MERCHANT}, {"1": USER_FEATURES})
    scorer = _scorer(registry)
    tx, users = _matrices()
    scorer.score(tx, users)
    registry.served["det"] = "2"
    with pytest.raises(RestartToBind, match="log_merchant_recent_frauds"):
        scorer.score(tx, users)
    # A bridge started with merchant risk scores either version by its own columns.
    scorer = _scorer(registry)
    wide, users = _matrices(tx_columns=MERCHANT)
    assert [s.anomaly_score for s in scorer.score(wide, users)] == _expected(wide, MERCHANT, TX[0])
    registry.served["det"] = "1"
    assert [s.anomaly_score for s in scorer.score(wide, users)] == _expected(wide, MERCHANT, TX[0])
    scorer.close()


def test_a_feature_this_release_does_not_compute_stalls_until_the_champion_moves_back() -> None:
    registry = Registry({"1": TX, "2": (*TX, "tomorrows_feature")}, {"1": USER_FEATURES})
    scorer = _scorer(registry)
    tx, users = _matrices()
    scorer.score(tx, users)
    registry.served["det"] = "2"
    for _ in range(2):  # a stall: the loop pauses and retries, nothing is dead-lettered
        with pytest.raises(FeaturesNotComputed, match="tomorrows_feature") as caught:
            scorer.score(tx, users)
        assert isinstance(caught.value, EndpointUnavailable)
    registry.served["det"] = "1"
    assert [s.anomaly_score for s in scorer.score(tx, users)] == _expected(tx, TX, TX[0])
    scorer.close()


def test_the_risk_model_wanting_a_feature_not_computed_stalls_too() -> None:
    registry = Registry({"1": TX}, {"1": USER_FEATURES, "2": (*USER_FEATURES, "new_user_thing")})
    scorer = _scorer(registry)
    tx, users = _matrices()
    scorer.score(tx, users)
    registry.served["risk"] = "2"
    with pytest.raises(FeaturesNotComputed, match="new_user_thing"):
        scorer.score(tx, users)
    scorer.close()


def test_the_shadow_challenger_follows_its_alias_and_never_scores_misplaced_columns() -> None:
    challenger = Registry({"1": TX}, {"1": USER_FEATURES})
    challenger.versions["challenger"] = {"5": REVERSED, "6": ROTATED, "7": (*TX, "unknown_x")}
    challenger.served["challenger"] = "5"
    champion = Registry({"1": TX}, {"1": USER_FEATURES})
    shadow = Shadow(mock_client(challenger), "challenger")
    scorer = _scorer(champion, shadow=shadow)
    tx, users = _matrices()
    scores = scorer.score(tx, users)
    assert [s.challenger_score for s in scores] == _expected(tx, TX, REVERSED[0])
    challenger.served["challenger"] = "6"
    scores = scorer.score(tx, users)
    assert [s.challenger_score for s in scores] == _expected(tx, TX, ROTATED[0])
    assert {s.challenger_version for s in scores} == {"6"}
    # One it cannot bind: no challenger verdicts, the champion's unchanged.
    challenger.served["challenger"] = "7"
    scores = scorer.score(tx, users)
    assert {s.challenger_version for s in scores} == {None}
    assert [s.anomaly_score for s in scores] == _expected(tx, TX, TX[0])
    scorer.close()


class _Run:
    """A bridge whose run ends as scripted: RestartToBind, or stats."""

    def __init__(self, outcome: Exception | None, scored: int, stop_first: bool = False) -> None:
        self.outcome = outcome
        self.stats = RunStats(scored=scored)
        self.started = self.stopped = False
        self.stop_first = stop_first

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def run(self, *, idle_exit_s: float | None = None) -> RunStats:
        if self.outcome is not None:
            if self.stop_first:  # SIGTERM came while this run was ending to bind again
                signal.raise_signal(signal.SIGTERM)
            raise self.outcome
        return self.stats


def test_a_run_ended_to_bind_again_is_followed_by_a_new_bridge_in_the_same_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = [_Run(RestartToBind("reads merchant risk"), scored=5), _Run(None, scored=7)]
    built = iter(runs)
    monkeypatch.setattr(app, "build_bridge", lambda settings: next(built))
    monkeypatch.setattr(app, "tune_collector", lambda n: None)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        stats = app.run_bridge(Settings())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert all(run.started for run in runs)
    assert stats.scored == 12  # both runs counted


def test_a_stop_asked_while_a_run_ends_to_bind_again_starts_no_new_bridge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _Run(RestartToBind("reads merchant risk"), scored=5, stop_first=True)
    built = iter([first])
    monkeypatch.setattr(app, "build_bridge", lambda settings: next(built))
    monkeypatch.setattr(app, "tune_collector", lambda n: None)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        stats = app.run_bridge(Settings())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert first.stopped and stats.scored == 5  # and no second bridge was built
