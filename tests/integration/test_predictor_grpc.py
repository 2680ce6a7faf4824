"""The live predictor's Open Inference Protocol over gRPC, called as KServe users call it:
kserve's InferenceGRPCClient (infer, health, readiness) and the protocol's generated stub that
kserve ships (metadata, and requests built by hand as a careless or hostile client would).

Contract: for the same rows gRPC answers what REST answers (both models, raw and typed
tensor contents, a risk model's gaps, a categorical input's text or code), and refuses what
REST refuses with the same message: INVALID_ARGUMENT where REST says 400, NOT_FOUND where it
says 404; never INTERNAL or UNKNOWN.

(Triton's gRPC client cannot load beside kserve: both register the `inference` protobufs in
one descriptor pool, and the process refuses the second. Its REST client is tested in
test_predictor_clients.py.)
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest

from finrisk.models.encoding import encode
from finrisk.serving.predictor.kserve_import import kserve
from finrisk.serving.protocol import from_raw_contents
from tests.support import trained_models
from tests.support.predictor_process import Served

pytestmark = pytest.mark.integration

pb = kserve.protocol.grpc.grpc_predict_v2_pb2
pb_grpc = kserve.protocol.grpc.grpc_predict_v2_pb2_grpc


@pytest.fixture(scope="module")
def stub(served: Served) -> Iterator[Any]:
    channel = grpc.insecure_channel(served.grpc_address)
    try:
        yield pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        channel.close()


def _kserve_call(served: Served, call: Any) -> Any:
    async def run() -> Any:
        client = kserve.InferenceGRPCClient(
            served.grpc_address, channel_args=[("grpc.enable_retries", 0)], timeout=30
        )
        try:
            return await call(client)
        finally:
            await client.close()

    return asyncio.run(run())


def _rest_metadata(served: Served, name: str) -> dict[str, Any]:
    return httpx.get(f"{served.url}/v2/models/{name}", timeout=10).json()


def _listening(table: str, port: int) -> set[str]:
    lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    # 0A = LISTEN; the local address's hex IP, for this port.
    return {
        line.split()[1].rsplit(":", 1)[0]
        for line in lines
        if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")
    }


def test_binds_loopback_only(served: Served) -> None:
    port = int(served.grpc_address.rsplit(":", 1)[1])
    # gRPC may listen on an IPv6 socket with the IPv4-mapped loopback address.
    found = _listening("tcp", port) | _listening("tcp6", port)
    assert found, f"nothing listens on {port}"
    assert found <= {"0100007F", "0000000000000000FFFF00000100007F"}, found


def test_health_and_readiness_through_kserves_client(served: Served) -> None:
    async def call(client: Any) -> tuple[bool, bool, bool, bool]:
        return (
            await client.is_server_live(),
            await client.is_server_ready(),
            await client.is_model_ready(served.detector),
            await client.is_model_ready(served.risk),
        )

    assert _kserve_call(served, call) == (True, True, True, True)


def test_metadata_is_the_rest_metadata(served: Served, stub: Any) -> None:
    rest_server = httpx.get(f"{served.url}/v2", timeout=10).json()
    server = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert (server.name, server.version) == (rest_server["name"], rest_server["version"])
    assert list(server.extensions) == rest_server["extensions"]
    for name in (served.detector, served.risk):
        rest = _rest_metadata(served, name)
        version = rest["versions"][0]
        found = stub.ModelMetadata(pb.ModelMetadataRequest(name=name, version=version))
        assert (found.name, list(found.versions), found.platform) == (
            name,
            [version],
            rest["platform"],
        )
        for tensors, rest_tensors in (
            (found.inputs, rest["inputs"]),
            (found.outputs, rest["outputs"]),
        ):
            assert [(t.name, t.datatype, list(t.shape)) for t in tensors] == [
                (t["name"], t["datatype"], t["shape"]) for t in rest_tensors
            ]
        assert stub.ModelReady(pb.ModelReadyRequest(name=name, version=version)).ready
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelReady(pb.ModelReadyRequest(name=name, version="999"))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert f"serves version {version}, not 999" in refused.value.details()


def _rows(served: Served, kind: str) -> tuple[str, list[str], np.ndarray]:
    """Rows of the model's features; the risk model's with a gap in every optional input."""
    name = served.detector if kind == "detector" else served.risk
    metadata = _rest_metadata(served, name)
    names = [tensor["name"] for tensor in metadata["inputs"]]
    if kind == "detector":
        frame, _ = trained_models.detector_frame(n=12, seed=41)
        return name, names, frame.loc[:, names].to_numpy(dtype=np.float64)
    frame, _ = trained_models.risk_frame(n=8, seed=42)
    matrix = frame.loc[:, names].to_numpy(dtype=np.float64)
    optional = [
        j
        for j, tensor in enumerate(metadata["inputs"])
        if tensor.get("parameters", {}).get("optional")
    ]
    assert optional, "the risk model declares no optional input: the gaps test nothing"
    for i in range(0, len(matrix), 2):
        matrix[i, optional[i % len(optional)]] = math.nan
    return name, names, matrix


def _rest_outputs(served: Served, name: str, matrix: np.ndarray) -> dict[str, Any]:
    data = [None if math.isnan(v) else v for v in matrix.ravel().tolist()]
    body = {
        "inputs": [
            {"name": "features", "shape": list(matrix.shape), "datatype": "FP64", "data": data}
        ]
    }
    answer = httpx.post(f"{served.url}/v2/models/{name}/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    return {
        "model_version": document["model_version"],
        "parameters": document["parameters"],
        "outputs": {t["name"]: (t["datatype"], t["shape"], t["data"]) for t in document["outputs"]},
    }


@pytest.mark.parametrize("binary", [False, True], ids=["typed-contents", "raw-contents"])
@pytest.mark.parametrize("kind", ["detector", "risk"])
def test_inference_through_kserves_client_equals_rest(
    served: Served, kind: str, binary: bool
) -> None:
    name, _, matrix = _rows(served, kind)
    tensor = kserve.InferInput(name="features", shape=list(matrix.shape), datatype="FP64")
    tensor.set_data_from_numpy(matrix, binary_data=binary)
    request = kserve.InferRequest(model_name=name, infer_inputs=[tensor], request_id="g-1")

    async def call(client: Any) -> Any:
        return await client.infer(request)

    response = _kserve_call(served, call)
    rest = _rest_outputs(served, name, matrix)
    assert response.id == "g-1" and response.model_name == name
    got = {}
    for output in response.outputs:
        values = output.as_numpy()
        if output.datatype == "BYTES":
            values = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v)(values)
        got[output.name] = (output.datatype, list(output.shape), values.ravel().tolist())
    assert set(got) == set(rest["outputs"])
    for key, (datatype, shape, data) in rest["outputs"].items():
        assert got[key][:2] == (datatype, shape), key
        assert got[key][2] == data, key  # bit for bit: the same scorer behind both protocols


def test_raw_response_carries_version_and_decision_parameters(served: Served, stub: Any) -> None:
    name, _, matrix = _rows(served, "risk")
    request = pb.ModelInferRequest(
        model_name=name,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="features", datatype="FP64", shape=list(matrix.shape)
            )
        ],
        raw_input_contents=[matrix.astype("<f8").tobytes()],
        parameters={"reasons": pb.InferParameter(int64_param=0)},
    )
    response = stub.ModelInfer(request)
    rest = _rest_outputs(served, name, matrix)
    assert response.model_version == rest["model_version"]
    # Floats as text: kserve's InferParameter has no double_param.
    assert {k: float(v.string_param) for k, v in response.parameters.items()} == rest["parameters"]
    assert response.id  # the protocol wants one; none was sent
    # reasons=0: the reasons outputs are not computed, as on REST.
    assert [o.name for o in response.outputs] == ["probability", "band"]


# The same bad request as a REST V2 body, to compare refusals message for message.
def _v2(
    data: list[Any],
    shape: list[int],
    *,
    datatype: str = "FP64",
    name: str = "features",
    **extra: Any,
) -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}], **extra}


_FIELDS = {"FP64": "fp64_contents", "INT64": "int64_contents", "BYTES": "bytes_contents"}


def _parameter(value: Any) -> Any:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    return pb.InferParameter(string_param=value)


def _grpc_request(model: str, body: dict[str, Any]) -> Any:
    inputs = []
    for item in body["inputs"]:
        field = _FIELDS[item["datatype"]]
        data = [v.encode() for v in item["data"]] if item["datatype"] == "BYTES" else item["data"]
        inputs.append(
            pb.ModelInferRequest.InferInputTensor(
                name=item["name"],
                datatype=item["datatype"],
                shape=item["shape"],
                contents=pb.InferTensorContents(**{field: data}),
            )
        )
    return pb.ModelInferRequest(
        model_name=model,
        inputs=inputs,
        outputs=[
            pb.ModelInferRequest.InferRequestedOutputTensor(name=o["name"])
            for o in body.get("outputs", [])
        ],
        parameters={k: _parameter(v) for k, v in body.get("parameters", {}).items()},
    )


ROW = [1.0, 2.0, 0.0, 1.0]
BAD = {
    "too few columns": _v2([1.0, 2.0, 3.0], [1, 3]),
    "wrong datatype": _v2([1, 2, 3, 4], [1, 4], datatype="INT64"),
    "text": _v2(["a", "b", "c", "d"], [1, 4], datatype="BYTES"),
    "missing inputs": _v2([1.0], [1], name="amount_z"),
    "unknown input": _v2([1.0], [1], name="nobody"),
    "values short of the shape": _v2(ROW, [2, 4]),
    "NaN": _v2([1.0, math.nan, 0.0, 1.0], [1, 4]),
    "infinity": _v2([1.0, 2.0, math.inf, 1.0], [1, 4]),
    "empty batch": _v2([], [0, 4]),
    "too many rows": _v2(ROW * 101, [101, 4]),
    "unknown output": _v2(ROW, [1, 4], outputs=[{"name": "reasons"}]),
    "reasons not an integer": _v2(ROW, [1, 4], parameters={"reasons": "3"}),
    "recommendations on a detector": _v2(ROW, [1, 4], parameters={"recommendations": 1}),
    "unknown reasons_from": _v2(ROW, [1, 4], parameters={"reasons_from": "SEVERE"}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_requests_are_invalid_argument_with_rests_message(
    served: Served, stub: Any, case: str
) -> None:
    body = BAD[case]
    rest = httpx.post(
        f"{served.url}/v2/models/{served.detector}/infer",
        content=json.dumps(body),  # NaN and Infinity as literals, which the predictor names
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert rest.status_code == 400, rest.text
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(_grpc_request(served.detector, body))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == rest.json()["error"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            dict(
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="features", datatype="FP64", shape=[1, 4]
                    )
                ],
                raw_input_contents=[b"\0" * 13],
            ),
            "raw_input_contents[0] (input 'features'): 13 bytes is not a whole number of FP64",
        ),
        (
            dict(
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="features", datatype="FP64", shape=[2, 4]
                    )
                ],
                raw_input_contents=[b"\0" * 32],
            ),
            "shape [2, 4] needs 8 values, got 4",
        ),
        (
            dict(
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="features", datatype="FP64", shape=[1, 4]
                    )
                ],
                raw_input_contents=[b"\0" * 32, b"\0" * 8],
            ),
            "raw_input_contents holds 2 tensors for 1 inputs",
        ),
        (
            dict(
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="features",
                        datatype="FP64",
                        shape=[1, 4],
                        contents=pb.InferTensorContents(fp64_contents=ROW),
                    )
                ],
                raw_input_contents=[b"\0" * 32],
            ),
            "contents and raw_input_contents are both given",
        ),
        (
            dict(
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="features",
                        datatype="FP64",
                        shape=[1, 4],
                        contents=pb.InferTensorContents(int64_contents=[1, 2, 3, 4]),
                    )
                ],
            ),
            "datatype 'FP64' carries its values in fp64_contents, not int64_contents",
        ),
        (dict(inputs=[]), "'inputs' must be a non-empty list"),
        (
            dict(
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="features", datatype="FP64", shape=[-1, 4]
                    )
                ],
                raw_input_contents=[b"\0" * 32],
            ),
            "'shape' must be a non-empty list of non-negative integers",
        ),
    ],
    ids=[
        "ragged-raw",
        "raw-short",
        "raw-count",
        "raw-and-contents",
        "wrong-field",
        "no-inputs",
        "negative-shape",
    ],
)
def test_malformed_grpc_tensors_are_invalid_argument(
    served: Served, stub: Any, request_: dict[str, Any], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(pb.ModelInferRequest(model_name=served.detector, **request_))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in refused.value.details()


def test_unknown_model_or_version_is_not_found(served: Served, stub: Any) -> None:
    row = pb.ModelInferRequest.InferInputTensor(
        name="features",
        datatype="FP64",
        shape=[1, 4],
        contents=pb.InferTensorContents(fp64_contents=ROW),
    )
    for request in (
        pb.ModelInferRequest(model_name="nobody", inputs=[row]),
        pb.ModelInferRequest(model_name=served.detector, model_version="999", inputs=[row]),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    for call, message in (
        (stub.ModelMetadata, pb.ModelMetadataRequest(name="nobody")),
        (stub.ModelReady, pb.ModelReadyRequest(name="nobody")),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call(message)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'nobody' is not served here" in refused.value.details()


# Category text (served_categories: a risk model with the categorical input `employment`): the
# text scores as its code, bit for bit, over V1, V2 JSON and gRPC; text where no category is
# taken is refused alike by REST and gRPC.


@pytest.fixture(scope="module")
def text_stub(served_categories: Served) -> Iterator[Any]:
    channel = grpc.insecure_channel(served_categories.grpc_address)
    try:
        yield pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        channel.close()


def _text_rows(served: Served) -> tuple[list[str], np.ndarray, list[str | None]]:
    """(features, rows as codes, the same rows' employment as text): every category, padded
    text, gaps and a text never seen in training; the codes are the training encoder's."""
    metadata = _rest_metadata(served, served.risk)
    names = [tensor["name"] for tensor in metadata["inputs"]]
    parameters = metadata["inputs"][names.index("employment")]["parameters"]
    assert parameters["categories"] == sorted(trained_models.EMPLOYMENT)
    assert parameters["datatypes"] == ["FP64", "BYTES"]
    frame, _ = trained_models.risk_text_frame(n=12, seed=43)
    texts = [*trained_models.EMPLOYMENT, " student ", "unemployed", None]
    texts += frame["employment"].tolist()[len(texts) :]
    frame["employment"] = pd.Series(texts, dtype=object).to_numpy()
    codes = encode(frame, names, {"employment": parameters["categories"]})
    assert np.isnan(codes[5:7, names.index("employment")]).all()  # unseen text, and a gap
    return names, codes, texts


def _named_v2(names: list[str], values: np.ndarray, text: list[str | None] | None) -> Any:
    inputs = [
        {"name": name, "shape": [len(values)], "datatype": "FP64",
         "data": [None if math.isnan(v) else v for v in values[:, k].tolist()]}
        for k, name in enumerate(names)
    ]  # fmt: skip
    if text is not None:
        inputs[names.index("employment")].update(datatype="BYTES", data=text)
    return {"id": "t", "inputs": inputs, "parameters": {"reasons": 2}}


def test_category_text_scores_as_its_code_over_every_protocol(
    served_categories: Served, text_stub: Any
) -> None:
    served = served_categories
    names, codes, texts = _text_rows(served)
    j = names.index("employment")
    coded_rows = [
        {n: (None if math.isnan(v) else v) for n, v in zip(names, row, strict=True)}
        for row in codes.tolist()
    ]
    text_rows = [row | {"employment": t} for row, t in zip(coded_rows, texts, strict=True)]
    v1 = [
        httpx.post(f"{served.url}/v1/models/{served.risk}:predict", json={"instances": rows})
        for rows in (coded_rows, text_rows)
    ]
    assert v1[1].status_code == 200, v1[1].text
    assert v1[0].content == v1[1].content

    v2 = [
        httpx.post(f"{served.url}/v2/models/{served.risk}/infer", json=_named_v2(names, codes, t))
        for t in (None, texts)
    ]
    assert v2[1].status_code == 200, v2[1].text
    assert v2[0].content == v2[1].content

    # gRPC: the text as bytes_contents (no null in protobuf: "" is a gap, as it is in training)
    # against the codes as raw contents
    text_request = _grpc_request(served.risk, _named_v2(names, codes, [t or "" for t in texts]))
    text_request.id = "t"  # _grpc_request leaves the id out
    raw_request = pb.ModelInferRequest(
        model_name=served.risk,
        id="t",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(name=n, datatype="FP64", shape=[len(codes)])
            for n in names
        ],
        raw_input_contents=[codes[:, k].astype("<f8").tobytes() for k in range(len(names))],
        parameters={"reasons": pb.InferParameter(int64_param=2)},
    )
    answers = [text_stub.ModelInfer(r) for r in (text_request, raw_request)]
    assert answers[0].SerializeToString(deterministic=True) == answers[1].SerializeToString(
        deterministic=True
    )
    rest = {o["name"]: o["data"] for o in v2[1].json()["outputs"]}
    for output, raw in zip(answers[0].outputs, answers[0].raw_output_contents, strict=True):
        assert from_raw_contents(raw, output.datatype).tolist() == rest[output.name], output.name
    assert codes[:, j].tolist() != [0.0] * len(codes)  # the rows do carry categories


TEXT_REFUSED = {
    "text for a numeric input": (
        "total_income",
        "input 'total_income': datatype 'BYTES' (text) is not accepted for 'total_income'",
    ),
    "text as the feature matrix": (
        "features",
        "input 'features': the feature matrix is FP64 (categories as codes), not BYTES",
    ),
}


@pytest.mark.parametrize("case", sorted(TEXT_REFUSED))
def test_text_where_no_category_is_taken_is_refused_alike(
    served_categories: Served, text_stub: Any, case: str
) -> None:
    served = served_categories
    names, codes, _ = _text_rows(served)
    target, message = TEXT_REFUSED[case]
    if target == "features":
        body = _v2(["salaried"] * len(names), [1, len(names)], datatype="BYTES")
    else:
        body = _named_v2(names, codes[:1], None)
        body["inputs"][names.index(target)].update(datatype="BYTES", data=["3000"])
        del body["id"]
    rest = httpx.post(f"{served.url}/v2/models/{served.risk}/infer", json=body, timeout=30)
    assert rest.status_code == 400 and message in rest.json()["error"], rest.text
    with pytest.raises(grpc.RpcError) as refused:
        text_stub.ModelInfer(_grpc_request(served.risk, body))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == rest.json()["error"]
    row = {n: 1.0 for n in names} | {"total_income": "3000"}
    v1 = httpx.post(f"{served.url}/v1/models/{served.risk}:predict", json={"instances": [row]})
    assert v1.status_code == 400
    assert "row 0, feature 'total_income': expected a number, got str" in v1.json()["error"]
