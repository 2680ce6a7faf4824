"""The pipeline's Kubernetes manifests in manifests/base: least-privilege RBAC, the config it
reads, and kustomize wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from finrisk.deploy import cluster
from finrisk.deploy.apply import GROUP, PLURAL

BASE = Path(__file__).resolve().parents[2] / "manifests" / "base"


def _docs(name: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all((BASE / name).read_text()) if d}


def test_rbac_grants_only_inferenceservices_in_one_namespace() -> None:
    docs = _docs("pipeline-rbac.yaml")
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding"}  # no ClusterRole
    assert docs["ServiceAccount"]["metadata"]["name"] == cluster.PIPELINE_SERVICE_ACCOUNT
    (rule,) = docs["Role"]["rules"]
    assert rule == {
        "apiGroups": [GROUP],
        "resources": [PLURAL],
        "verbs": ["get", "patch"],  # what finrisk.deploy.apply calls, no more
    }
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": docs["Role"]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": cluster.PIPELINE_SERVICE_ACCOUNT}
    ]


def test_config_map_carries_the_keys_the_pipeline_reads() -> None:
    config = _docs("pipeline-config.yaml")["ConfigMap"]
    assert config["metadata"]["name"] == cluster.CONFIG_MAP
    assert config["data"][cluster.MLFLOW_URI_KEY].startswith("http")
    # Credentials never live in the ConfigMap.
    assert not any("PASSWORD" in key or "TOKEN" in key for key in config["data"])


def test_config_map_defaults_to_googles_bigquery() -> None:
    """Both BigQuery endpoints are there, empty (Google's API and Read API, as on GKE), and
    pass the check the tasks apply when they read them."""
    from finrisk.bigquery_client import endpoints_from_env

    data = _docs("pipeline-config.yaml")["ConfigMap"]["data"]
    assert {key: data[key] for key in cluster.BIGQUERY_CONFIG_KEYS} == {
        cluster.BIGQUERY_ENDPOINT_KEY: "",
        cluster.BIGQUERY_READ_ENDPOINT_KEY: "",
    }
    assert endpoints_from_env(data) == (None, None)


def test_kustomization_lists_the_pipeline_manifests() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert {"pipeline-config.yaml", "pipeline-rbac.yaml"} <= set(kustomization["resources"])
