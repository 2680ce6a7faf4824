"""Start the predictor: load every model from the registry, then serve HTTP with uvicorn and
gRPC (grpc_service.py) beside it, in the same event loop, on the same models.

No kserve ModelServer (which binds 0.0.0.0 and reads sys.argv): the app is kserve's endpoints
plus finrisk's routes (app.py), and both servers bind the configured host only.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial

import uvicorn

from finrisk.errors import FinriskError
from finrisk.serving.predictor.app import build_app
from finrisk.serving.predictor.config import PredictorSettings
from finrisk.serving.predictor.grpc_service import grpc_server
from finrisk.serving.predictor.model import MODEL_TYPES, FinriskModel

log = logging.getLogger(__name__)


def build_models(settings: PredictorSettings) -> list[FinriskModel]:
    refs = settings.model_refs()
    if not refs:
        raise FinriskError("no model to serve: --models names none of detector, risk")
    names = [ref.name for ref in refs.values()]
    if len(set(names)) != len(names):
        raise FinriskError(f"two models share the name {names[0]!r}")
    return [
        MODEL_TYPES[kind](
            ref,
            tracking_uri=settings.tracking_uri,
            threads=settings.onnx_threads(),
            max_rows=settings.max_batch_rows,
            default_reasons=settings.reasons,
        )
        for kind, ref in refs.items()
    ]


def load_all(models: list[FinriskModel], timeout: float) -> None:
    """Load every model, retrying while MLflow is unreachable or the alias is not set yet."""
    deadline = time.monotonic() + timeout
    for model in models:
        while True:
            try:
                model.load()
                break
            except (FinriskError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise FinriskError(f"cannot load {model.ref.uri}: {exc}") from exc
                log.warning("loading %s failed, retrying: %s", model.ref.uri, exc)
                time.sleep(2.0)


def serve(settings: PredictorSettings) -> None:
    """Load the models and serve until SIGINT / SIGTERM (graceful: in-flight requests finish)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    models = build_models(settings)
    load_all(models, settings.load_timeout_s)
    companions = []
    if settings.grpc_port:
        companions.append(
            partial(
                grpc_server,
                models,
                host=settings.host,
                port=settings.grpc_port,
                max_message_bytes=settings.max_body_bytes,
                max_concurrency=settings.max_concurrency,
            )
        )
    app = build_app(
        models,
        reload_interval=settings.reload_interval_s,
        max_body_bytes=settings.max_body_bytes,
        max_concurrency=settings.max_concurrency,
        companions=companions,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=settings.access_log,
        timeout_keep_alive=65,
        timeout_graceful_shutdown=20,
    )
    log.info(
        "serving %s on http://%s:%d",
        ", ".join(f"{m.name} v{m.scorer.version if m.scorer else '?'}" for m in models),
        settings.host,
        settings.http_port,
    )
    uvicorn.Server(config).run()
