"""Names of the cluster objects that carry finrisk's configuration and secrets.

The retraining pipeline's tasks and the InferenceService read them by reference
(kfp-kubernetes, `valueFrom`), so no URI or credential is ever written into a manifest.
manifests/base creates the ConfigMap and documents the Secrets.
"""

from __future__ import annotations

# ConfigMap with non-secret settings.
CONFIG_MAP = "finrisk-config"
MLFLOW_URI_KEY = "MLFLOW_TRACKING_URI"
# URL of a BigQuery API other than Google's (the emulator's REST port). Unset or empty (the
# base ConfigMap's default, right on GKE): Google's BigQuery.
BIGQUERY_ENDPOINT_KEY = "FINRISK_BIGQUERY_ENDPOINT"
# host:port of a BigQuery Storage Read API without TLS (the emulator's gRPC port). Unset or
# empty with BIGQUERY_ENDPOINT_KEY set: results are read as REST pages; both unset or empty
# (the default, right on GKE): Google's Read API over TLS.
BIGQUERY_READ_ENDPOINT_KEY = "FINRISK_BIGQUERY_READ_ENDPOINT"
# The ConfigMap keys BigQuery's tasks read (each optional, empty meaning Google's).
BIGQUERY_CONFIG_KEYS: tuple[str, ...] = (BIGQUERY_ENDPOINT_KEY, BIGQUERY_READ_ENDPOINT_KEY)

# Secret with MLflow credentials (optional: an unauthenticated tracking server needs none).
MLFLOW_SECRET = "finrisk-mlflow-credentials"
MLFLOW_USERNAME_KEY = "MLFLOW_TRACKING_USERNAME"
MLFLOW_PASSWORD_KEY = "MLFLOW_TRACKING_PASSWORD"

# Secret with a Google service-account key (optional: Workload Identity needs none).
BIGQUERY_SECRET = "finrisk-bigquery-credentials"
BIGQUERY_KEY = "service-account.json"
# The environment variable the key's JSON text arrives in.
BIGQUERY_CREDENTIALS_ENV = "FINRISK_BIGQUERY_CREDENTIALS_JSON"

# The service account the retraining runs use (RBAC in manifests/base/pipeline-rbac.yaml).
PIPELINE_SERVICE_ACCOUNT = "finrisk-pipeline"
