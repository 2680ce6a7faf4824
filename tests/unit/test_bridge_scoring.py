"""V2Scorer: column order from metadata, both models per batch, the reasons policy."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest

from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES
from finrisk.serving.bridge.scoring import V2Scorer
from finrisk.serving.bridge.v2_client import BadAnswer
from tests.support.mock_predictor import mock_client

# The served detector takes its features in reverse order; the risk model takes five of them.
DETECTOR_ORDER = list(reversed(TRANSACTION_FEATURES))
RISK_ORDER = list(USER_FEATURES[:5])
# One recommendation as the predictor writes it (finrisk.models.recommendations).
RECS = [
    {
        "actions": [{"lever": "keep_balance_buffer", "reduce_by": 0.3}],
        "changes": [{"feature": "low_balance_freq", "from": 0.5, "to": 0.35}],
        "cost": 0.3,
        "probability": 0.38,
        "band": "LOW",
    }
]


class Predictor:
    """Answers like finrisk's predictor (the contract in finrisk.serving.predictor.scoring)."""

    def __init__(
        self,
        *,
        honours_reasons_from: bool = True,
        binary: bool = False,
        short_reasons: bool = False,
        recommendations_text: str | None = None,
    ) -> None:
        self.infer_bodies: list[tuple[str, dict[str, object]]] = []
        self.binary_bodies = 0
        # False: a predictor that does not know the parameter and explains every row.
        self.honours_reasons_from = honours_reasons_from
        self.binary = binary  # lists the binary tensor data extension, and reads it
        self.short_reasons = short_reasons  # answers one reason name too few
        self.recommendations_text = recommendations_text  # what elevated rows get, if not RECS

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2":
            extensions = ["binary_tensor_data"] if self.binary else []
            return httpx.Response(200, json={"name": "stub", "extensions": extensions})
        name = request.url.path.split("/")[3]
        order = DETECTOR_ORDER if name == "det" else RISK_ORDER
        if request.method == "GET":
            inputs = [{"name": f, "datatype": "FP64", "shape": [-1]} for f in order]
            version = "4" if name == "det" else "9"  # the versions its answers name
            return httpx.Response(200, json={"name": name, "versions": [version], "inputs": inputs})
        length = request.headers.get("inference-header-content-length")
        content = request.content if length is None else request.content[: int(length)]
        body = orjson.loads(content)
        self.infer_bodies.append((name, body))
        (tensor,) = body["inputs"]
        rows, width = tensor["shape"]
        if length is None:
            x = np.asarray(tensor["data"]).reshape(rows, width)
        else:
            assert self.binary and "data" not in tensor
            raw = request.content[int(length) :]
            assert len(raw) == tensor["parameters"]["binary_data_size"] == rows * width * 8
            x = np.frombuffer(raw, dtype="<f8").reshape(rows, width)
            self.binary_bodies += 1
        if name == "det":
            score = x[:, 0] / 100  # the first served column: the bridge's last feature
            outputs = [
                {"name": "score", "datatype": "FP64", "shape": [rows], "data": score.tolist()},
                {
                    "name": "is_anomaly",
                    "datatype": "BOOL",
                    "shape": [rows],
                    "data": (score >= 0.5).tolist(),
                },
            ]
            return httpx.Response(
                200,
                json={
                    "model_name": name,
                    "model_version": "4",
                    "parameters": {"threshold": 0.5},
                    "outputs": outputs,
                },
            )
        p = x[:, 0] / 100
        bands = ["LOW" if v < 0.4 else "HIGH" if v > 0.7 else "MEDIUM" for v in p]
        outputs = [
            {"name": "probability", "datatype": "FP64", "shape": [rows], "data": p.tolist()},
            {"name": "band", "datatype": "BYTES", "shape": [rows], "data": bands},
        ]
        parameters = body.get("parameters", {})
        k = parameters.get("reasons", 3)
        if k:
            floor = parameters.get("reasons_from") if self.honours_reasons_from else None
            explained = [floor != "MEDIUM" or v >= 0.4 for v in p]
            names = [
                RISK_ORDER[j] if j < 2 and explained[i] else ""
                for i in range(rows)
                for j in range(k)
            ][: rows * k - self.short_reasons]
            outputs.append(
                {"name": "reasons", "datatype": "BYTES", "shape": [rows, k], "data": names}
            )
            values = [0.1 * (j + 1) for _ in range(rows) for j in range(k)]
            outputs.append(
                {
                    "name": "reason_contributions",
                    "datatype": "FP64",
                    "shape": [rows, k],
                    "data": values,
                }
            )
        if parameters.get("recommendations"):
            text = self.recommendations_text or orjson.dumps(RECS).decode()
            outputs.append(
                {
                    "name": "recommendations",
                    "datatype": "BYTES",
                    "shape": [rows],
                    "data": ["" if band == "LOW" else text for band in bands],
                }
            )
        return httpx.Response(
            200,
            json={
                "model_name": name,
                "model_version": "9",
                "parameters": {"band_low": 0.4, "band_high": 0.7},
                "outputs": outputs,
            },
        )


def _matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    tx = np.zeros((n, len(TRANSACTION_FEATURES)))
    tx[:, -1] = np.linspace(10, 90, n)  # the detector scores 0.1 .. 0.9
    users = np.zeros((n, len(USER_FEATURES)))
    users[:, 0] = [10, 50, 90, 20][:n]  # LOW, MEDIUM, HIGH, LOW
    return tx, users


def test_columns_follow_each_models_metadata_and_both_are_scored() -> None:
    predictor = Predictor()
    client = mock_client(predictor)
    scorer = V2Scorer(client, client, "det", "risk", reasons="none")
    tx, users = _matrices(4)
    scores = scorer.score(tx, users)
    scorer.close()
    assert [s.anomaly_score for s in scores] == pytest.approx([0.1, 0.3666667, 0.6333333, 0.9])
    assert [s.is_anomaly for s in scores] == [False, False, True, True]
    assert {s.threshold for s in scores} == {0.5}
    assert [s.risk_band for s in scores] == ["LOW", "MEDIUM", "HIGH", "LOW"]
    assert {(s.detector_version, s.risk_model_version) for s in scores} == {("4", "9")}
    sent = {name: body for name, body in predictor.infer_bodies}
    assert sent["risk"]["inputs"][0]["shape"] == [4, 5]  # type: ignore[index]
    assert all(s.reasons == [] for s in scores)


@pytest.mark.parametrize("honours_reasons_from", [True, False])
def test_elevated_policy_explains_only_medium_and_high_rows_in_one_call(
    honours_reasons_from: bool,
) -> None:
    predictor = Predictor(honours_reasons_from=honours_reasons_from)
    client = mock_client(predictor)
    scorer = V2Scorer(client, client, "det", "risk", reasons="elevated", reasons_per_row=3)
    scores = scorer.score(*_matrices(4))
    scorer.close()
    risk_calls = [body for name, body in predictor.infer_bodies if name == "risk"]
    assert [c["inputs"][0]["shape"][0] for c in risk_calls] == [4]  # type: ignore[index]
    assert [c.get("parameters") for c in risk_calls] == [{"reasons": 3, "reasons_from": "MEDIUM"}]
    expected = [
        {"feature": RISK_ORDER[0], "contribution": 0.1},
        {"feature": RISK_ORDER[1], "contribution": 0.2},
    ]  # empty reason names are padding, dropped
    assert [s.reasons for s in scores] == [[], expected, expected, []]


def test_rows_go_as_binary_tensors_to_a_server_that_lists_the_extension() -> None:
    scores = {}
    for binary in (False, True):
        predictor = Predictor(binary=binary)
        client = mock_client(predictor)
        scorer = V2Scorer(client, client, "det", "risk", reasons="all")
        scores[binary] = scorer.score(*_matrices(4))
        scorer.close()
        assert predictor.binary_bodies == (2 if binary else 0)  # the detector and the risk call
    assert scores[True] == scores[False]


def test_all_policy_explains_every_row_in_one_call() -> None:
    predictor = Predictor()
    client = mock_client(predictor)
    scorer = V2Scorer(client, client, "det", "risk", reasons="all", reasons_per_row=2)
    scores = scorer.score(*_matrices(4))
    scorer.close()
    risk_calls = [body for name, body in predictor.infer_bodies if name == "risk"]
    assert len(risk_calls) == 1 and risk_calls[0]["parameters"] == {"reasons": 2}
    assert all(len(s.reasons) == 2 for s in scores)


def test_a_model_wanting_an_unknown_feature_is_a_bad_answer() -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        inputs = [{"name": "shoe_size", "datatype": "FP64", "shape": [-1]}]
        return httpx.Response(200, json={"name": "det", "inputs": inputs})

    client = mock_client(odd)  # type: ignore[arg-type]
    scorer = V2Scorer(client, None, "det", None)
    with pytest.raises(BadAnswer, match="shoe_size"):
        scorer.score(*_matrices(2))
    scorer.close()


@pytest.mark.parametrize("reasons", ["all", "elevated"])
def test_reasons_of_the_wrong_length_are_a_bad_answer(reasons: str) -> None:
    client = mock_client(Predictor(short_reasons=True))
    scorer = V2Scorer(client, client, "det", "risk", reasons=reasons, reasons_per_row=3)  # type: ignore[arg-type]
    with pytest.raises(BadAnswer, match=r"'reasons' has 11 values for 4 rows \(3 per row\)"):
        scorer.score(*_matrices(4))
    scorer.close()


def test_detector_alone_scores_without_risk_fields() -> None:
    predictor = Predictor()
    client = mock_client(predictor)
    scorer = V2Scorer(client, None, "det", None)
    scores = scorer.score(*_matrices(3))
    scorer.close()
    assert [s.anomaly_score for s in scores] == pytest.approx([0.1, 0.5, 0.9])
    assert [s.is_anomaly for s in scores] == [False, True, True]
    assert {(s.risk_probability, s.risk_band, s.risk_model_version) for s in scores} == {
        (None, None, None)
    }
    assert [s.reasons for s in scores] == [[], [], []]
    assert scores[0].reasons is not scores[1].reasons  # each row its own list
    assert [name for name, _ in predictor.infer_bodies] == ["det"]


def test_answers_typed_loosely_are_converted() -> None:
    def loose(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2":
            return httpx.Response(200, json={"name": "stub", "extensions": []})
        if request.method == "GET":
            inputs = [{"name": f, "datatype": "FP64", "shape": [-1]} for f in DETECTOR_ORDER]
            return httpx.Response(200, json={"name": "det", "inputs": inputs})
        outputs = [
            {"name": "score", "datatype": "FP64", "shape": [2], "data": [0, 0.75]},
            {"name": "is_anomaly", "datatype": "INT8", "shape": [2], "data": [0, 1]},
        ]
        return httpx.Response(200, json={"model_name": "det", "outputs": outputs})

    client = mock_client(loose)  # type: ignore[arg-type]
    scorer = V2Scorer(client, None, "det", None)
    scores = scorer.score(*_matrices(2))
    scorer.close()
    assert [(type(s.anomaly_score), s.anomaly_score) for s in scores] == [
        (float, 0.0),
        (float, 0.75),
    ]
    assert [s.is_anomaly for s in scores] == [False, True]
    assert {s.detector_version for s in scores} == {"unknown"}


def test_the_shadow_challenger_is_scored_beside_and_never_changes_the_champion() -> None:
    from finrisk.serving.bridge.shadow import Shadow

    tx, users = _matrices(4)
    champion_only = V2Scorer(mock_client(Predictor()), mock_client(Predictor()), "det", "risk")
    expected = champion_only.score(tx, users)
    challenger = Predictor()
    scorer = V2Scorer(
        mock_client(Predictor()),
        mock_client(Predictor()),
        "det",
        "risk",
        shadow=Shadow(mock_client(challenger), "det"),
    )
    scores = scorer.score(tx, users)
    assert [s[:8] for s in scores] == [s[:8] for s in expected]  # the champion's, unchanged
    assert [s.challenger_score for s in scores] == [s.anomaly_score for s in expected]
    assert [s.challenger_is_anomaly for s in scores] == [s.is_anomaly for s in expected]
    assert {s.challenger_version for s in scores} == {"4"}
    assert [name for name, _ in challenger.infer_bodies] == ["det"]  # one call per batch

    # A challenger that is down (or refuses): the batch goes on without challenger scores.
    def down(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "challenger down"})

    failing = Shadow(mock_client(down), "det")
    scorer = V2Scorer(
        mock_client(Predictor()), mock_client(Predictor()), "det", "risk", shadow=failing
    )
    for _ in range(2):
        scores = scorer.score(tx, users)
        assert scores == expected and {s.challenger_version for s in scores} == {None}
    assert failing.failures == 2


def test_recommendations_are_asked_for_and_carried_for_elevated_rows() -> None:
    predictor = Predictor()
    client = mock_client(predictor)
    scorer = V2Scorer(client, client, "det", "risk", reasons="elevated", recommendations=2)
    scores = scorer.score(*_matrices(4))
    scorer.close()
    (risk_call,) = [body for name, body in predictor.infer_bodies if name == "risk"]
    assert risk_call["parameters"] == {
        "reasons": 3,
        "reasons_from": "MEDIUM",
        "recommendations": 2,
    }
    assert [s.recommendations for s in scores] == [None, RECS, RECS, None]  # LOW, M, H, LOW


def test_recommendations_are_off_by_default() -> None:
    predictor = Predictor()
    client = mock_client(predictor)
    scorer = V2Scorer(client, client, "det", "risk")
    scores = scorer.score(*_matrices(4))
    scorer.close()
    (risk_call,) = [body for name, body in predictor.infer_bodies if name == "risk"]
    assert "recommendations" not in risk_call["parameters"]  # type: ignore[operator]
    assert all(s.recommendations is None for s in scores)


def test_an_empty_search_is_an_empty_list_and_bad_text_a_bad_answer() -> None:
    client = mock_client(Predictor(recommendations_text="[]"))
    scorer = V2Scorer(client, client, "det", "risk", recommendations=1)
    assert [s.recommendations for s in scorer.score(*_matrices(4))] == [None, [], [], None]
    scorer.close()
    client = mock_client(Predictor(recommendations_text="{not json"))
    scorer = V2Scorer(client, client, "det", "risk", recommendations=1)
    with pytest.raises(BadAnswer, match=r"output 'recommendations' holds .* not a JSON array"):
        scorer.score(*_matrices(4))
    scorer.close()
