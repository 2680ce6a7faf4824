"""`finrisk serve`: the KServe predictor for the champion models, on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import logging
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "serve the registered models over KServe V1 and V2 (Open Inference Protocol, REST and gRPC)"
    )
    parser = subparsers.add_parser("serve", help=text, description=text)
    parser.add_argument(
        "--models", help="which models: detector (or anomaly), risk, comma-separated (default both)"
    )
    parser.add_argument("--alias", help="registry alias to serve (default champion)")
    parser.add_argument(
        "--detector-uri", help="models:/<name>@<alias> or models:/<name>/<version> for the detector"
    )
    parser.add_argument("--risk-uri", help="the same for the risk model")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the local stack)",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, help="HTTP port (default 8080)")
    parser.add_argument(
        "--grpc-port", type=int, help="gRPC (Open Inference Protocol) port, 0 = none (default 8081)"
    )
    parser.add_argument(
        "--reload-interval", type=float, help="seconds between alias checks, 0 = never (default 30)"
    )
    parser.add_argument(
        "--max-batch-rows", type=int, help="rows per request at most (default 10000)"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, help="largest request body in bytes, else 413 (64 MiB)"
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        help="inference requests in flight at most, else 503 with Retry-After (default 64)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="tree evaluator threads for large batches (default: cores, at most 4)",
    )
    parser.add_argument("--access-log", action="store_true", default=None, help="log every request")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(handler=_serve)


_FLAGS = {
    "models": "models",
    "alias": "alias",
    "detector_uri": "detector_uri",
    "risk_uri": "risk_uri",
    "tracking_uri": "tracking_uri",
    "host": "host",
    "http_port": "http_port",
    "grpc_port": "grpc_port",
    "reload_interval": "reload_interval_s",
    "max_batch_rows": "max_batch_rows",
    "max_body_bytes": "max_body_bytes",
    "max_concurrency": "max_concurrency",
    "threads": "threads",
    "access_log": "access_log",
}


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from finrisk.errors import FinriskError
    from finrisk.serving.predictor.config import PredictorSettings
    from finrisk.serving.predictor.server import serve

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides: dict[str, Any] = {
        field: getattr(args, flag)
        for flag, field in _FLAGS.items()
        if getattr(args, flag) is not None
    }
    try:
        settings = PredictorSettings(**overrides)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(map(str, problem["loc"]))
        raise FinriskError(f"predictor setting {where}: {problem['msg']}") from None
    serve(settings)
    return 0
