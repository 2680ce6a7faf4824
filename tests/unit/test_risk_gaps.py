"""Gaps and categories on the bring-your-own-data path of the risk model (issue 32, part 1):
user tables with empty cells in numeric columns and a text column train, compile with parity,
explain by original column and serve; `finrisk data validate --table users` names the right
columns. Every table here is made by the test itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from finrisk.cli import main
from finrisk.compiled import compile_model, require_parity
from finrisk.errors import FinriskError
from finrisk.evaluation.inputs import risk_data_from_user_table
from finrisk.io import read_table
from finrisk.models.risk import RiskModel, SeedLogisticRiskModel
from finrisk.registry import ModelRef
from finrisk.serving.predictor.app import build_app
from finrisk.serving.predictor.grpc_messages import pb
from finrisk.serving.predictor.grpc_service import InferenceService
from finrisk.serving.predictor.model import DetectorPredictor, RiskPredictor
from finrisk.validation import validate_users
from tests.support import trained_models

GRADES = ("A", "B", "C")


def gappy_users(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """income and dependants with ~10% gaps, a 3-level text column (with gaps), a 30-level text
    column, and a label that depends on the gaps and the text."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 0.6, n).round(2)
    dependants = rng.integers(0, 5, n).astype(float)
    score = rng.normal(size=n).round(4)
    grade = rng.choice(GRADES, n)
    logit = -1.0 + score - 0.6 * np.log(income / 3000) + 0.3 * dependants + 1.5 * (grade == "C")
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "income": income,
            "dependants": dependants,
            "score": score,
            "grade": pd.Series(grade, dtype=object),
            "city": [f"city{i}" for i in rng.integers(0, 30, n)],
            "is_risky": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    frame.loc[rng.random(n) < 0.1, "income"] = np.nan
    frame.loc[rng.random(n) < 0.1, "dependants"] = np.nan
    frame.loc[rng.random(n) < 0.05, "grade"] = None
    return frame


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gaps") / "users.csv"
    gappy_users().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def table(csv: Path) -> Any:
    return risk_data_from_user_table(read_table(csv))


MODELS = {
    "logistic": lambda: RiskModel(estimator="logistic", cv=3),
    "isotonic": lambda: RiskModel(cv=3, calibration="isotonic"),
    "hgb": lambda: RiskModel(estimator="hgb", cv=3, max_iter=40),
    "seed": SeedLogisticRiskModel,
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest, table: Any) -> Any:
    return MODELS[request.param]().fit(table.table, table.labels)


def test_gaps_and_a_text_column_become_features(table: Any) -> None:
    assert table.feature_names == ("income", "dependants", "score", "grade")
    assert table.table["income"].isna().sum() > 0
    assert table.table["grade"].dropna().isin(GRADES).all()
    assert table.facts["categorical_columns"] == "grade"
    assert table.facts["ignored_columns"] == "city"
    assert table.warnings == [
        "column 'city' dropped: text with 30 distinct values (at most 20 are encoded)"
    ]


def test_mixed_columns_are_refused_by_name() -> None:
    users = pd.DataFrame({"user_id": ["a", "b"], "income": ["1", "n/a"], "is_risky": [0, 1]})
    with pytest.raises(FinriskError, match=r"'income' mixes numbers and text.*'n/a'"):
        risk_data_from_user_table(users)


def test_compiled_scores_match_on_rows_with_gaps(fitted: Any, table: Any) -> None:
    compiled = compile_model(fitted)
    assert set(compiled.missing) == set(table.feature_names)
    assert compiled.categories == {"grade": list(GRADES)}
    report = require_parity(fitted, compiled, table.table)
    assert report.ok and report.max_abs_diff <= 1e-9
    values = fitted.encode(table.table)
    assert np.isnan(values).any()
    np.testing.assert_allclose(
        compiled.score(values), fitted.risk_probability(table.table), atol=1e-9
    )


def test_probe_rows_hold_gaps_and_every_code(fitted: Any) -> None:
    from finrisk.compiled import probe_rows

    compiled = compile_model(fitted)
    rows = probe_rows(compiled, 500)
    assert np.isnan(rows).any(axis=0).all()
    grade = rows[:, compiled.feature_names.index("grade")]
    assert set(grade[~np.isnan(grade)]) == {0.0, 1.0, 2.0}


def test_gaps_and_categories_change_scores(fitted: Any, table: Any) -> None:
    row = table.table.iloc[[0]].copy()
    row["income"], row["grade"] = 3000.0, "C"
    base = fitted.risk_probability(row)[0]
    gap = row.assign(income=np.nan)
    other = row.assign(grade="A")
    unseen = row.assign(grade="Z")
    missing = row.assign(grade=None)
    assert fitted.risk_probability(other)[0] != base
    # A category never seen in training is read as a missing one.
    assert fitted.risk_probability(unseen)[0] == fitted.risk_probability(missing)[0]
    assert np.isfinite(fitted.risk_probability(gap)[0])


def test_reasons_name_the_original_columns(fitted: Any, table: Any) -> None:
    for row in fitted.explain(table.table.head(50), k=4):
        assert {r.feature for r in row} <= set(table.feature_names)
    compiled = compile_model(fitted)
    occluder = compiled.occluder(fitted.reference_)
    if occluder is not None:  # linear heads: one pass, per original column
        values = fitted.encode(table.table.head(50))
        occluded = occluder(values)
        assert occluded.shape == (50, len(table.feature_names) + 1)


def test_infinite_values_are_refused_by_name(fitted: Any, table: Any) -> None:
    with pytest.raises(FinriskError, match="'score' is infinite"):
        fitted.risk_probability(table.table.head(2).assign(score=np.inf))


def test_train_on_a_table_with_gaps_and_text(
    csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--model", "risk", "--data", str(csv), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "column 'city' dropped: text with 30 distinct values" in err


def test_validate_users_names_the_columns_that_cannot_be_features(tmp_path: Path) -> None:
    users = gappy_users(400)
    users["note"] = ["1", "two"] * 200  # numbers mixed with text
    users["blank"] = ""
    path = tmp_path / "users.csv"
    users.to_csv(path, index=False)
    report = validate_users(read_table(path))
    assert report.ok
    warnings = {p.kind: p.message for p in report.warnings}
    assert set(warnings) == {"non_numeric_column", "too_many_categories", "empty_column"}
    assert warnings["non_numeric_column"].endswith(": 'note'")
    assert warnings["too_many_categories"].endswith("'city' (30 values)")
    assert warnings["empty_column"].endswith(": 'blank'")
    for message in warnings.values():
        for column in ("income", "dependants", "score", "grade"):
            assert repr(column) not in message


# Serving: the predictor takes missing values for optional inputs, codes or text for categories.


@pytest.fixture(scope="module", params=["hgb", "logistic"])
def predictors(request: pytest.FixtureRequest, table: Any) -> Any:
    model = MODELS[request.param]().fit(table.table, table.labels)
    risk = RiskPredictor(ModelRef("risk", alias="champion"))
    risk._install(trained_models.loaded(model, "risk"))  # type: ignore[arg-type]
    risk.ready = True
    det = DetectorPredictor(ModelRef("det", alias="champion"))
    det._install(trained_models.loaded(trained_models.detector("supervised"), "det"))  # type: ignore[arg-type]
    det.ready = True
    return model, [risk, det]


@pytest.fixture(scope="module")
def served(predictors: Any, table: Any) -> Any:
    model, models = predictors
    with TestClient(build_app(models)) as client:
        yield client, model, table


def _rows(table: Any, model: Any, n: int = 8) -> tuple[pd.DataFrame, np.ndarray]:
    frame = table.table.head(n)
    return frame, model.encode(frame)


def test_v1_and_v2_score_rows_with_gaps_like_the_model(served: Any) -> None:
    client, model, table = served
    frame, values = _rows(table, model)
    assert np.isnan(values).any()
    want = model.risk_probability(frame)
    names = list(model.feature_names_)
    instances = [
        {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, row, strict=True)}
        for row in values
    ]
    v1 = client.post("/v1/models/risk:predict", json={"instances": instances})
    assert v1.status_code == 200, v1.text
    got = [p["probability"] for p in v1.json()["predictions"]]
    np.testing.assert_allclose(got, want, atol=1e-12)
    inputs = [
        {
            "name": n,
            "shape": [len(values)],
            "datatype": "FP64",
            "data": [None if np.isnan(v) else float(v) for v in values[:, j]],
        }
        for j, n in enumerate(names)
    ]
    v2 = client.post("/v2/models/risk/infer", json={"inputs": inputs})
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
    np.testing.assert_allclose(outputs["probability"], want, atol=1e-12)
    assert set(outputs["reasons"]) <= {*names, ""}


def test_metadata_says_which_inputs_may_be_missing(served: Any) -> None:
    client = served[0]
    inputs = {i["name"]: i for i in client.get("/v2/models/risk").json()["inputs"]}
    assert all(i["parameters"]["optional"] for i in inputs.values())
    assert inputs["grade"]["parameters"]["categories"] == list(GRADES)
    # a categorical input takes its code or its category text
    assert inputs["grade"]["parameters"]["datatypes"] == ["FP64", "BYTES"]
    assert inputs["income"]["parameters"] == {"optional": True}
    det = client.get("/v2/models/det").json()["inputs"]
    assert all("parameters" not in i for i in det)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"grade": 7.0}, "feature 'grade', row 0: 7.0 is not a category code"),
        ({"grade": 0.5}, "feature 'grade', row 0: 0.5 is not a category code"),
        ({"income": "3000"}, "feature 'income': expected a number, got str"),
    ],
)
def test_hostile_risk_inputs_are_400s_naming_the_input(
    served: Any, row: dict[str, Any], message: str
) -> None:
    client, model, _ = served
    instance = {n: 0.0 for n in model.feature_names_} | row
    response = client.post("/v1/models/risk:predict", json={"instances": [instance]})
    assert response.status_code == 400
    assert message in response.text


def test_infinity_and_detector_gaps_stay_400s(served: Any) -> None:
    client, model, _ = served
    fields = ", ".join(
        f'"{n}": {"Infinity" if n == "income" else "0"}' for n in model.feature_names_
    )
    text = '{"instances": [{' + fields + "}]}"
    response = client.post(
        "/v1/models/risk:predict", content=text, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "'income': infinite" in response.text
    det_names = [i["name"] for i in client.get("/v2/models/det").json()["inputs"]]
    instance = {n: 0.0 for n in det_names} | {det_names[0]: None}
    response = client.post("/v1/models/det:predict", json={"instances": [instance]})
    assert response.status_code == 400 and "expected a number, got null" in response.text


def _text_and_codes(model: Any, table: Any) -> tuple[list[str], np.ndarray, list[str | None]]:
    """(feature names, rows as codes, the same rows' grade as text): every category, padded
    text, a gap (null) and a text never seen in training, whose code form is a gap."""
    _, values = _rows(table, model, n=10)
    names = list(model.feature_names_)
    j = names.index("grade")
    values[:, j] = [0, 1, 2, np.nan, 1, np.nan, 2, 0, 1, 2]
    texts: list[str | None] = ["A", "B", "C", None, " B ", "never-seen", "C", "A", "B", "C"]
    return names, values, texts


def _json_value(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def test_category_text_scores_as_its_code_bit_for_bit_v1_and_v2(served: Any) -> None:
    client, model, table = served
    names, values, texts = _text_and_codes(model, table)
    j = names.index("grade")
    coded = [
        {n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in values.tolist()
    ]
    text = [row | {"grade": t} for row, t in zip(coded, texts, strict=True)]
    answers = [
        client.post("/v1/models/risk:predict", json={"instances": rows, "parameters": {}})
        for rows in (coded, text)
    ]
    assert [a.status_code for a in answers] == [200, 200], answers[1].text
    assert answers[0].content == answers[1].content  # the encoded body, byte for byte

    def v2(grade: dict[str, Any]) -> Any:
        inputs = [
            {"name": n, "shape": [len(values)], "datatype": "FP64",
             "data": [_json_value(v) for v in values[:, k]]}
            for k, n in enumerate(names)
        ]  # fmt: skip
        inputs[j] = {"name": "grade", "shape": [len(values)], **grade}
        body = {"id": "p", "inputs": inputs, "parameters": {"reasons": 3}}
        return client.post("/v2/models/risk/infer", json=body)

    codes_answer = v2({"datatype": "FP64", "data": [_json_value(v) for v in values[:, j]]})
    text_answer = v2({"datatype": "BYTES", "data": texts})
    assert text_answer.status_code == 200, text_answer.text
    assert codes_answer.content == text_answer.content
    probability = next(o for o in text_answer.json()["outputs"] if o["name"] == "probability")
    # as the model scores the same texts (the unseen one a gap, as in training); the compiled
    # model agrees with sklearn's to rounding, not bit for bit
    frame = table.table.head(10).copy()
    frame["grade"] = pd.Series(texts, dtype=object).to_numpy()
    np.testing.assert_allclose(probability["data"], model.risk_probability(frame), atol=1e-12)


class _Context:
    async def abort(self, code: Any, message: str) -> None:
        raise AssertionError(f"{code}: {message}")


def test_category_text_scores_as_its_code_bit_for_bit_grpc(predictors: Any, table: Any) -> None:
    model, models = predictors
    service = InferenceService(models)
    names, values, texts = _text_and_codes(model, table)
    j = names.index("grade")

    def tensor(name: str, datatype: str, **contents: Any) -> Any:
        return pb.ModelInferRequest.InferInputTensor(
            name=name,
            datatype=datatype,
            shape=[len(values)],
            contents=pb.InferTensorContents(**contents) if contents else None,
        )

    def infer(grade_tensor: Any, grade_raw: bytes | None) -> Any:
        inputs = [tensor(n, "FP64") for n in names]
        raw = [values[:, k].astype("<f8").tobytes() for k in range(len(names))]
        inputs[j] = grade_tensor
        if grade_raw is None:
            inputs = [
                tensor(n, "FP64", fp64_contents=values[:, k].tolist()) if k != j else t
                for k, (n, t) in enumerate(zip(names, inputs, strict=True))
            ]
            raw = []
        else:
            raw[j] = grade_raw
        request = pb.ModelInferRequest(model_name="risk", id="g", inputs=inputs,
                                       raw_input_contents=raw)  # fmt: skip
        return asyncio.run(service.ModelInfer(request, _Context()))

    as_text = [b"" if t is None else t.encode() for t in texts]  # proto has no null: "" is one
    codes = values[:, j]
    answers = {
        "codes, raw": infer(tensor("grade", "FP64"), codes.astype("<f8").tobytes()),
        "codes, typed": infer(tensor("grade", "FP64", fp64_contents=codes.tolist()), None),
        "text, raw": infer(
            tensor("grade", "BYTES"),
            b"".join(len(t).to_bytes(4, "little") + t for t in as_text),
        ),
        "text, typed": infer(tensor("grade", "BYTES", bytes_contents=as_text), None),
    }
    first = answers["codes, raw"].SerializeToString(deterministic=True)
    for how, answer in answers.items():
        assert answer.SerializeToString(deterministic=True) == first, how
