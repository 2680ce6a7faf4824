"""`finrisk bench serving`: finrisk's predictor against `mlflow models serve`, same model, same run.

Both servers run on 127.0.0.1 as subprocesses and answer one keep-alive client, one request at a
time: single-row latency (p50 / p99) and rows/s at each batch size, plus the in-process ceiling
of the original (sklearn) model and of the compiled one. finrisk's predictor is measured over
every transport it speaks: V2 REST with JSON tensors, V2 REST with binary tensors, V1 REST, and
the Open Inference Protocol over gRPC (raw tensor contents, one channel). The model is the
registered champion when there is one, else a detector trained here on synthetic data and
registered for the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from finrisk.bench import history
from finrisk.bench.history import AT, COMMIT, LOAD, Column, Headline, Run

DEFAULT_BATCHES = (1, 100, 1000)
BENCH_EXPERIMENT = "finrisk-bench"


def register_serving(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "finrisk's predictor vs `mlflow models serve` on the same registered model"
    sub = actions.add_parser("serving", help=text, description=text)
    sub.add_argument("--model", default="detector", help="detector or risk (default detector)")
    sub.add_argument(
        "--model-uri",
        help="models:/<name>@<alias> or models:/<name>/<version> (default: the champion if one "
        "is registered, else a model trained here on synthetic data)",
    )
    sub.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the local stack, started if needed)"
    )
    sub.add_argument("--batches", default="1,100,1000", help="batch sizes (default 1,100,1000)")
    sub.add_argument(
        "--requests", type=int, default=400, help="timed single-row requests (default 400)"
    )
    sub.add_argument(
        "--batch-requests",
        type=int,
        default=60,
        help="timed requests per larger batch (default 60)",
    )
    sub.add_argument("--users", type=int, default=200, help="synthetic users for training/requests")
    sub.add_argument("--days", type=int, default=60, help="days of synthetic history")
    sub.add_argument("--seed", type=int, default=7, help="synthetic data seed")
    sub.add_argument(
        "--mlflow-omp-threads",
        default="1",
        help="OMP_NUM_THREADS for mlflow models serve (default 1: sklearn's OpenMP tree predict "
        "stalls for seconds on a busy machine otherwise; 'default' leaves it unset)",
    )
    history.add_flags(sub, "benchmarks/serving.jsonl")
    sub.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    from finrisk.errors import FinriskError

    if args.history is not None:
        print(history.table(history.read(args.history), HISTORY_COLUMNS), end="")
        return 0
    try:
        batches = tuple(int(b) for b in args.batches.split(","))
    except ValueError:
        raise FinriskError(
            f"--batches must be comma-separated integers, got {args.batches!r}"
        ) from None
    if not batches or min(batches) < 1:
        raise FinriskError("--batches needs positive batch sizes")
    if args.requests < 10 or args.batch_requests < 3:
        raise FinriskError("--requests must be at least 10 and --batch-requests at least 3")
    result = run(args, batches)
    if args.record is not None:
        history.record(
            args.record,
            command=args.argv,
            settings=run_settings(args, batches, result["model"]),
            figures=figures(result),
            load=result["setup"]["load_average_1m"],
        )
    print(json.dumps(result, indent=2))
    return 0


def run_settings(
    args: argparse.Namespace, batches: Sequence[int], model: dict[str, Any]
) -> dict[str, Any]:
    """What a recorded run measured: the model as resolved, and the flags."""
    flags = ("requests", "batch_requests", "users", "days", "seed", "mlflow_omp_threads")
    return {
        "model": model["kind"],
        "model_uri": model["uri"],
        "model_class": model["class"],
        "model_trained_for_this_run": model["trained_for_this_run"],
        "tracking_uri": args.tracking_uri,
        "batches": list(batches),
        **{flag: getattr(args, flag) for flag in flags},
    }


# -- timing --------------------------------------------------------------------------------


def _percentiles(seconds: Sequence[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def _time_calls(call: Callable[[], Any], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


IN_PROCESS_WARMUP = 3


def _fresh_spans(n_rows: int, batch: int, calls: int) -> list[tuple[int, int]]:
    """(start, stop) of `calls` consecutive batches, wrapping round a pool of n_rows >= batch."""
    room = max(1, n_rows - batch + 1)
    return [((k * batch) % room, (k * batch) % room + batch) for k in range(calls)]


def _time_fresh(score: Callable[[Any], Any], inputs: Sequence[Any]) -> dict[str, float]:
    """score(inputs[k]) after IN_PROCESS_WARMUP untimed calls: wall-clock figures, and the rows/s
    of this thread's CPU time (`cpu_rows_per_s`), which other processes on a shared machine
    inflate far less than the wall clock (they preempt; they do not add CPU time)."""
    for rows in inputs[:IN_PROCESS_WARMUP]:
        score(rows)
    wall, cpu = [], 0.0
    for rows in inputs[IN_PROCESS_WARMUP:]:
        started, cpu_started = time.perf_counter(), time.thread_time()
        score(rows)
        wall.append(time.perf_counter() - started)
        cpu += time.thread_time() - cpu_started
    batch = len(inputs[0])
    return {
        **_figures(wall, batch),
        "cpu_rows_per_s": round(batch * len(wall) / cpu, 1) if cpu > 0 else float("inf"),
    }


def _original_scores(model: Any, frame: Any) -> Any:
    """The finrisk model's own call, with sklearn's default threading."""
    if hasattr(model, "anomaly_score"):
        return model.anomaly_score(frame)
    return model.risk_probability(frame)


def _figures(seconds: list[float], rows: int) -> dict[str, float]:
    return {**_percentiles(seconds), "rows_per_s": round(rows * len(seconds) / sum(seconds), 1)}


# -- processes -----------------------------------------------------------------------------


@contextlib.contextmanager
def _process(
    argv: Sequence[str], env: dict[str, str], log: Path, ready: Callable[[], bool], what: str
) -> Iterator[None]:
    from finrisk.errors import FinriskError
    from finrisk.stack import process

    child = process.spawn(argv, log, env)
    try:

        def died() -> str | None:
            if child.poll() is None:
                return None
            return f"exited with code {child.returncode}; log {log}:\n{process.log_tail(log)}"

        try:
            process.wait_until(ready, 180, what, failed=died, interval=0.25)
        except FinriskError:
            raise
        yield
    finally:
        process.stop_spawned(child, timeout=20)


def _http_ok(url: str) -> Callable[[], bool]:
    import httpx

    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@contextlib.contextmanager
def _grpc_stub(address: str) -> Iterator[Any]:
    """The Open Inference Protocol's generated stub (kserve's) on one channel to `address`."""
    import grpc

    from finrisk.serving.predictor.kserve_import import kserve

    channel = grpc.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 64 << 20)]
    )
    try:
        yield kserve.protocol.grpc.grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
    finally:
        channel.close()


def _grpc_request(model: str, rows: Any, parameters: dict[str, Any]) -> Any:
    from finrisk.serving.predictor.kserve_import import kserve

    pb = kserve.protocol.grpc.grpc_predict_v2_pb2
    return pb.ModelInferRequest(
        model_name=model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="features", datatype="FP64", shape=list(rows.shape)
            )
        ],
        parameters={k: pb.InferParameter(int64_param=v) for k, v in parameters.items()},
        raw_input_contents=[rows.astype("<f8").tobytes()],
    )


def _binary_body(
    tensor: dict[str, Any], extra: dict[str, Any], rows: Any
) -> tuple[bytes, dict[str, str]]:
    """A V2 REST request with `rows` as binary tensor data (as the bridge sends it)."""
    from finrisk.serving.protocol import binary_request

    sent = dict(tensor)
    return binary_request({"inputs": [sent], **extra}, sent, rows)


# -- model and data ------------------------------------------------------------------------


def _synthetic(users: int, days: int, seed: int) -> tuple[Any, Any]:
    from finrisk.synthetic import generate

    transactions, users_frame, *_ = generate(users=users, days=days, seed=seed)
    return transactions, users_frame


def _feature_frames(transactions: Any) -> tuple[Any, Any]:
    import pandas as pd

    from finrisk.features import transaction_features, user_features
    from finrisk.models import seed_transaction_frame

    tx = transaction_features(transactions)
    seed_cols = seed_transaction_frame(transactions)
    tx = pd.concat([tx, seed_cols.loc[:, [c for c in seed_cols if c not in tx]]], axis=1)
    return tx, user_features(transactions)


def _train_and_register(kind: str, tracking_uri: str, transactions: Any, users: Any) -> str:
    from finrisk import registry
    from finrisk.compiled import DETECTOR
    from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES
    from finrisk.models import RiskModel, TransactionAnomalyDetector

    tx, user = _feature_frames(transactions)
    if kind == DETECTOR:
        model = TransactionAnomalyDetector().fit(
            tx.loc[:, list(TRANSACTION_FEATURES)], transactions["is_fraud"]
        )
    else:
        labels = users.set_index("user_id").loc[user.index, "is_risky"].to_numpy()
        model = RiskModel().fit(user.loc[:, list(USER_FEATURES)], labels)
    name = f"finrisk-bench-{kind}"
    _, model_uri = registry.log_model(
        model, kind, tracking_uri=tracking_uri, experiment=BENCH_EXPERIMENT
    )
    version = registry.register(
        model_uri, name, {"purpose": "finrisk bench serving"}, tracking_uri=tracking_uri
    )
    registry.set_alias(name, "bench", version, tracking_uri=tracking_uri)
    return f"models:/{name}/{version}"


def _default_model_uri(kind: str, tracking_uri: str) -> str | None:
    from finrisk import registry

    name = registry.DEFAULT_MODEL_NAMES[kind]
    found = registry.get_version(name, registry.CHAMPION, tracking_uri=tracking_uri)
    return None if found is None else f"models:/{name}/{found.version}"


# -- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace, batches: Sequence[int]) -> dict[str, Any]:
    from finrisk.registry import canonical_kind, resolve_tracking_uri
    from finrisk.settings import Settings
    from finrisk.stack import SERVICE_TYPES

    kind = canonical_kind(args.model)
    settings = Settings()
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    local = SERVICE_TYPES["mlflow"](settings)
    load = history.load_average_1m()  # before the run's own servers add to it
    started = tracking_uri.rstrip("/") == settings.mlflow.tracking_uri and local.up()
    try:
        result = _run(args, batches, kind, tracking_uri, settings.home / "bench")
        result["setup"]["load_average_1m"] = load
        return result
    finally:
        if started:
            local.down()


def _run(
    args: argparse.Namespace, batches: Sequence[int], kind: str, tracking_uri: str, logs: Path
) -> dict[str, Any]:
    import httpx
    import numpy as np
    import orjson
    from threadpoolctl import threadpool_limits

    from finrisk.compiled import DETECTOR, jit
    from finrisk.registry import load_uri, parse_model_uri
    from finrisk.serving.protocol import from_raw_contents
    from finrisk.stack.process import free_port

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    transactions, users = _synthetic(args.users, args.days, args.seed)
    trained = False
    model_uri = args.model_uri or _default_model_uri(kind, tracking_uri)
    if model_uri is None:
        model_uri = _train_and_register(kind, tracking_uri, transactions, users)
        trained = True
    ref = parse_model_uri(model_uri)
    loaded = load_uri(model_uri, tracking_uri=tracking_uri, python_model=True)  # the original
    names = list(loaded.compiled.feature_names)
    tx, user = _feature_frames(transactions)
    pool = tx if kind == DETECTOR else user
    missing = [n for n in names if n not in pool]
    if missing:
        from finrisk.errors import FinriskError

        raise FinriskError(f"{model_uri} takes features the benchmark cannot build: {missing}")
    biggest = max(batches)
    frame = pool.loc[:, names].sample(n=biggest, replace=len(pool) < biggest, random_state=0)
    frame = frame.reset_index(drop=True)
    matrix = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))

    def count(b: int) -> int:
        return args.requests if b == 1 else args.batch_requests

    # In-process ceilings: the original sklearn model and the compiled one (on each tree engine),
    # no HTTP. Every call scores rows the calls just before did not: the same rows called over
    # and over teach the branch predictor and caches their tree paths, which flatters small
    # batches up to 3x (docs/serving.md, "Compiled models").
    fresh_pool = pool.loc[:, names].sample(
        n=max(len(pool), 4 * biggest), replace=len(pool) < 4 * biggest, random_state=1
    )
    fresh_matrix = np.ascontiguousarray(fresh_pool.to_numpy(dtype=np.float64))
    onnx_compiled = loaded.compiled.with_engine("onnx")
    in_process: dict[str, Any] = {
        "original": {},
        "original_one_openmp_thread": {},
        "compiled": {},
        "compiled_onnx": {},
    }
    for b in batches:
        calls = count(b) + IN_PROCESS_WARMUP
        spans = _fresh_spans(len(fresh_matrix), b, calls)
        frames = [fresh_pool.iloc[start:stop] for start, stop in spans]
        matrices = [np.ascontiguousarray(fresh_matrix[start:stop]) for start, stop in spans]
        original = partial(_original_scores, loaded.model)
        in_process["original"][f"batch_{b}"] = _time_fresh(original, frames)
        with threadpool_limits(limits=1, user_api="openmp"):
            in_process["original_one_openmp_thread"][f"batch_{b}"] = _time_fresh(original, frames)
        for key, model in (("compiled", loaded.compiled), ("compiled_onnx", onnx_compiled)):
            in_process[key][f"batch_{b}"] = _time_fresh(model.score, matrices)

    ours_port, mlflow_port = free_port(run=2), free_port()  # ours: HTTP, then gRPC
    grpc_port = ours_port + 1
    ours_argv = [
        sys.executable, "-m", "finrisk", "serve", "--models", kind,
        f"--{'detector' if kind == DETECTOR else 'risk'}-uri", model_uri,
        "--tracking-uri", tracking_uri, "--http-port", str(ours_port),
        "--grpc-port", str(grpc_port), "--reload-interval", "0", "--log-level", "WARNING",
    ]  # fmt: skip
    bin_dir = str(Path(sys.executable).parent)
    mlflow_env = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        # `mlflow models serve` execs `uvicorn` from PATH.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if args.mlflow_omp_threads != "default":
        mlflow_env["OMP_NUM_THREADS"] = str(args.mlflow_omp_threads)
    mlflow_argv = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port),
    ]  # fmt: skip
    ours_url, mlflow_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{mlflow_port}"
    stamp = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {server: {} for server in SERVERS}
    parameters = {"reasons": 0} if kind != DETECTOR else {}
    agreement = grpc_agreement = 0.0
    ours_ready = _http_ok(f"{ours_url}/v2/health/ready")
    mlflow_ready = _http_ok(f"{mlflow_url}/ping")
    with (
        _process(ours_argv, {}, logs / f"predictor-{stamp}.log", ours_ready, "finrisk predictor"),
        _process(
            mlflow_argv,
            mlflow_env,
            logs / f"mlflow-{stamp}.log",
            mlflow_ready,
            "mlflow models serve",
        ),
        httpx.Client(timeout=300) as client,
        _grpc_stub(f"127.0.0.1:{grpc_port}") as stub,
    ):
        headers = {"content-type": "application/json"}
        for b in batches:
            rows = matrix[:b]
            extra = {"parameters": parameters} if parameters else {}
            tensor = {"name": "features", "shape": [b, len(names)], "datatype": "FP64"}
            v2 = orjson.dumps(
                {"inputs": [{**tensor, "data": rows.ravel()}], **extra},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            v1 = orjson.dumps({"instances": frame.iloc[:b].to_dict(orient="records"), **extra})
            split = orjson.dumps(
                {"dataframe_split": {"columns": names, "data": rows}},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            binary, binary_headers = _binary_body(tensor, extra, rows)
            v2_url = f"{ours_url}/v2/models/{ref.name}/infer"
            targets = (
                ("finrisk_v2", v2_url, v2, headers),
                ("finrisk_v2_binary", v2_url, binary, binary_headers),
                ("finrisk_v1", f"{ours_url}/v1/models/{ref.name}:predict", v1, headers),
                ("mlflow", f"{mlflow_url}/invocations", split, headers),
            )
            for label, url, body, sent_headers in targets:

                def call(
                    url: str = url, body: bytes = body, sent_headers: dict[str, str] = sent_headers
                ) -> httpx.Response:
                    response = client.post(url, content=body, headers=sent_headers)
                    if response.status_code != 200:
                        raise RuntimeError(
                            f"{url} answered {response.status_code}: {response.text[:300]}"
                        )
                    return response

                results[label][f"batch_{b}"] = _figures(
                    _time_calls(call, count(b), 5 if b == 1 else 2), b
                )
            request = _grpc_request(ref.name, rows, parameters)
            results["finrisk_grpc"][f"batch_{b}"] = _figures(
                _time_calls(partial(stub.ModelInfer, request), count(b), 5 if b == 1 else 2), b
            )
            ours = client.post(v2_url, content=v2, headers=headers).json()["outputs"][0]["data"]
            theirs = client.post(targets[3][1], content=split, headers=headers).json()[
                "predictions"
            ]
            key = "score" if kind == DETECTOR else "probability"
            agreement = max(
                agreement, float(np.max(np.abs(np.asarray(ours) - [p[key] for p in theirs])))
            )
            over_grpc = stub.ModelInfer(request)
            grpc_scores = from_raw_contents(over_grpc.raw_output_contents[0], "FP64")
            grpc_agreement = max(
                grpc_agreement, float(np.max(np.abs(grpc_scores - np.asarray(ours))))
            )

    # Issue 35's targets, per transport: single-row p50 at most 1/10 of mlflow's, rows/s at
    # the largest batch at least 10x.
    summary: dict[str, Any] = {}
    big = f"batch_{biggest}"
    for server in SERVERS[:-1]:
        mine, theirs = results[server], results["mlflow"]
        if 1 in batches:
            ratio = mine["batch_1"]["p50_ms"] / theirs["batch_1"]["p50_ms"]
            summary[f"{server}_single_row_p50_over_mlflow"] = round(ratio, 3)
            summary[f"{server}_single_row_target_met"] = ratio <= 1 / 10
        if biggest > 1:
            speedup = mine[big]["rows_per_s"] / theirs[big]["rows_per_s"]
            summary[f"{server}_rows_per_s_{big}_over_mlflow"] = round(speedup, 2)
            summary[f"{server}_{big}_target_met"] = speedup >= 10
    return {
        "model": {
            "uri": model_uri,
            "kind": kind,
            "class": loaded.metadata.get("model_class"),
            "features": len(names),
            "trained_for_this_run": trained,
            "tracking_uri": tracking_uri,
        },
        "setup": {
            "client": "one keep-alive httpx client, sequential requests, 127.0.0.1",
            "finrisk": "finrisk serve (V2 REST tensor as JSON and as binary data, V1 named "
            "instances, V2 gRPC with raw contents), compiled model",
            "in_process_rows": "fresh rows every call (none scored in the calls just before)",
            "tree_engine": loaded.compiled.engine,
            "jit_compile_s": None if jit.compile_seconds is None else round(jit.compile_seconds, 3),
            "mlflow": "mlflow models serve --env-manager local, dataframe_split, "
            "pyfunc on the original model",
            "mlflow_env": {k: v for k, v in mlflow_env.items() if k == "OMP_NUM_THREADS"},
            "risk_reasons": "off (reasons=0) so both servers do the same work"
            if kind != DETECTOR
            else None,
            "cpus": len(os.sched_getaffinity(0)),
        },
        "max_abs_score_diff_finrisk_vs_mlflow": agreement,
        "max_abs_score_diff_grpc_vs_rest": grpc_agreement,
        "in_process": in_process,
        **results,
        "summary": summary,
    }


# -- history -------------------------------------------------------------------------------

SERVERS = ("finrisk_v2", "finrisk_v2_binary", "finrisk_grpc", "finrisk_v1", "mlflow")


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures a run keeps in the benchmark's history: each server's and the in-process
    ceilings' per batch size, and how far apart the two servers' scores were."""
    return {
        **{server: result[server] for server in SERVERS},
        "in_process": result["in_process"],
        "max_abs_score_diff_finrisk_vs_mlflow": result["max_abs_score_diff_finrisk_vs_mlflow"],
    }


def _figure(run: Run, server: str, batch: int, key: str) -> float | None:
    # Runs from before a transport was measured have none of its figures.
    value: float | None = run["figures"].get(server, {}).get(f"batch_{batch}", {}).get(key)
    return value


def _shown(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} ms"


def _p50_one_row(server: str, label: str) -> Column:
    return Column(
        f"{label} p50, 1 row",
        lambda run: _ms(_figure(run, server, 1, "p50_ms")),
    )


def _rows_per_s_largest(server: str, label: str) -> Column:
    return Column(
        f"{label} rows/s, largest batch",
        lambda run: _shown(
            _figure(run, server, max(run["settings"]["batches"]), "rows_per_s"), ",.0f"
        ),
    )


HISTORY_COLUMNS = (
    AT,
    COMMIT,
    Column("model", lambda run: str(run["settings"]["model_class"])),
    _p50_one_row("finrisk_v2", "finrisk V2"),
    _p50_one_row("finrisk_v2_binary", "V2 binary"),
    _p50_one_row("finrisk_grpc", "gRPC"),
    _p50_one_row("mlflow", "mlflow"),
    Column("largest batch", lambda run: f"{max(run['settings']['batches']):,}"),
    _rows_per_s_largest("finrisk_v2", "finrisk V2"),
    _rows_per_s_largest("finrisk_v2_binary", "V2 binary"),
    _rows_per_s_largest("finrisk_grpc", "gRPC"),
    _rows_per_s_largest("mlflow", "mlflow"),
    LOAD,
)

COMPARES = "finrisk's predictor against `mlflow models serve` on the same model"


def headlines(run: Run) -> list[Headline]:
    """A run's figures beside their alternatives, for the summary of every benchmark."""
    settings = run["settings"]
    mlflow = "`mlflow models serve`, same model"
    largest = max(settings["batches"])
    return [
        Headline(
            f"single-row p50 latency, {settings['model_class']} (V2 tensor)",
            _figure(run, "finrisk_v2", 1, "p50_ms"),
            "ms",
            mlflow,
            _figure(run, "mlflow", 1, "p50_ms"),
        ),
        Headline(
            f"throughput at batch {largest:,}",
            _figure(run, "finrisk_v2", largest, "rows_per_s"),
            "rows/s",
            mlflow,
            _figure(run, "mlflow", largest, "rows_per_s"),
        ),
        Headline(
            f"single-row p50 latency, {settings['model_class']} (gRPC, raw tensor)",
            _figure(run, "finrisk_grpc", 1, "p50_ms"),
            "ms",
            mlflow,
            _figure(run, "mlflow", 1, "p50_ms"),
        ),
        Headline(
            f"throughput at batch {largest:,} (gRPC, raw tensor)",
            _figure(run, "finrisk_grpc", largest, "rows_per_s"),
            "rows/s",
            mlflow,
            _figure(run, "mlflow", largest, "rows_per_s"),
        ),
    ]
