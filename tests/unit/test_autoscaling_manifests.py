"""The autoscaling overlay: KEDA scales the bridge on its consumer lag. Its ScaledObject is valid
against the upstream CRD, reads the bridge's own settings (topic, group, brokers, partition
count), authenticates as the bridge does, and nothing else sets the bridge's replicas.

No cluster and no KEDA run here: this is the check `kubectl apply` makes, not KEDA's behaviour.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from finrisk.settings import BridgeSettings
from tests.support.crds import validate_manifest
from tests.support.k8s_core import validate_builtin
from tests.support.kustomize import kustomize

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "manifests" / "overlays" / "autoscaling"
PREFIX = "FINRISK_BRIDGE__"
# librdkafka's sasl.mechanism (BridgeSettings) -> KEDA's kafka trigger `sasl`.
KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
}


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in kustomize(OVERLAY)}


@pytest.fixture(scope="module")
def scaled(rendered: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return rendered[("ScaledObject", "finrisk-bridge")]


@pytest.fixture(scope="module")
def settings(rendered: dict[tuple[str, str], dict[str, Any]]) -> BridgeSettings:
    data = rendered[("ConfigMap", "finrisk-bridge-config")]["data"]
    return BridgeSettings.model_validate(
        {key.removeprefix(PREFIX).lower(): value for key, value in data.items()}
    )


def test_the_scaled_object_validates_against_the_upstream_crd(scaled: dict[str, Any]) -> None:
    assert validate_manifest(scaled) == []
    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["maxReplicas"] = misspelt["spec"].pop("maxReplicaCount")
    assert any("maxReplicas" in e for e in validate_manifest(misspelt))
    wrong_type = copy.deepcopy(scaled)
    wrong_type["spec"]["maxReplicaCount"] = str(scaled["spec"]["maxReplicaCount"])
    assert any(e.startswith("spec.maxReplicaCount") for e in validate_manifest(wrong_type))


def test_it_scales_the_bridge_up_to_the_input_partitions(
    rendered: dict[tuple[str, str], dict[str, Any]],
    scaled: dict[str, Any],
    settings: BridgeSettings,
) -> None:
    bridge = rendered[("StatefulSet", "finrisk-bridge")]
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        bridge["apiVersion"],
        bridge["kind"],
        bridge["metadata"]["name"],
    )
    assert scaled["metadata"]["namespace"] == bridge["metadata"]["namespace"]
    # A replica beyond the partition count would join the group and get nothing to do.
    assert scaled["spec"]["maxReplicaCount"] == settings.input_partitions
    # Never zero: a group without members commits nothing and monitoring stops.
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_the_partition_count_follows_the_bridge_settings() -> None:
    """Not retyped: the overlay copies FINRISK_BRIDGE__INPUT_PARTITIONS, so another count in
    the bridge's ConfigMap is another maximum."""
    base = kustomize(ROOT / "manifests" / "base")
    (config,) = [d for d in base if d["metadata"]["name"] == "finrisk-bridge-config"]
    assert BridgeSettings().input_partitions == int(config["data"][f"{PREFIX}INPUT_PARTITIONS"])


def test_the_trigger_reads_the_bridges_own_topic_group_and_brokers(
    scaled: dict[str, Any], settings: BridgeSettings
) -> None:
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == settings.input_topic
    assert meta["consumerGroup"] == settings.group_id
    assert meta["bootstrapServers"] == settings.bootstrap_servers
    # KEDA's names for the bridge's SASL mechanism and TLS.
    assert settings.sasl_mechanism is not None
    assert meta["sasl"] == KEDA_SASL[settings.sasl_mechanism]
    assert meta["tls"] == ("enable" if settings.security_protocol.endswith("SSL") else "disable")
    # A metric value per replica KEDA's HPA aims at: a positive whole number of messages.
    assert int(meta["lagThreshold"]) > 0
    assert meta["offsetResetPolicy"] == "earliest"  # as the bridge's consumer


def test_keda_authenticates_with_the_bridges_secrets(
    rendered: dict[tuple[str, str], dict[str, Any]], scaled: dict[str, Any]
) -> None:
    (trigger,) = scaled["spec"]["triggers"]
    auth = rendered[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    pod = rendered[("StatefulSet", "finrisk-bridge")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    for parameter in ("username", "password"):
        secret = env[f"{PREFIX}SASL_{parameter.upper()}"]
        assert refs[parameter] == (secret["name"], secret["key"])
    # The CA: the secret mounted where the bridge's ssl_ca_location points.
    config = rendered[("ConfigMap", "finrisk-bridge-config")]["data"]
    ca_path = Path(config[f"{PREFIX}SSL_CA_LOCATION"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(ca_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert refs["ca"] == (volume["secret"]["secretName"], ca_path.name)


def test_nothing_else_sets_the_bridges_replicas(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    bridge = rendered[("StatefulSet", "finrisk-bridge")]
    # A fixed count would be put back on every apply, fighting the HPA KEDA creates.
    assert "replicas" not in bridge["spec"]
    assert validate_builtin(bridge) == []
    assert not [kind for kind, _ in rendered if kind == "HorizontalPodAutoscaler"]
    base = {(d["kind"], d["metadata"]["name"]) for d in kustomize(ROOT / "manifests" / "base")}
    added = set(rendered) - base
    assert added == {
        ("ScaledObject", "finrisk-bridge"),
        ("TriggerAuthentication", "finrisk-bridge-kafka"),
    }
