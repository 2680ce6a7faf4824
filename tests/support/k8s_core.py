"""Check built-in Kubernetes objects (Deployment, ConfigMap, ...) against the client's models.

The kubernetes Python client knows every field of the built-in kinds and its type; a field it
does not know is one the API server would drop or refuse, so it is reported here, as are
values of the wrong JSON type. CRD-defined kinds go through tests/support/crds.py instead.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes.client as k8s

_KINDS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (str, int, dict, list, bool, float),
    "datetime": (str,),
    "date": (str,),
}


def _check(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    if value is None:
        return
    if type_name in _PRIMITIVES:
        wanted = _PRIMITIVES[type_name]
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__}")
        return
    listed = re.fullmatch(r"list\[(.+)\]", type_name)
    if listed:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            _check(item, listed.group(1), f"{path}[{i}]", errors)
        return
    mapped = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if mapped:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping")
            return
        for key, item in value.items():
            _check(item, mapped.group(1), f"{path}.{key}", errors)
        return
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name})")
        return
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        _check(item, model.openapi_types[by_json[key]], f"{path}.{key}", errors)


def validate_builtin(obj: dict[str, Any]) -> list[str]:
    """Problems with one built-in Kubernetes object; empty when the API server would take it."""
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    if key not in _KINDS:
        return [f"no model for apiVersion={key[0]} kind={key[1]}"]
    errors: list[str] = []
    if not (obj.get("metadata") or {}).get("name"):
        errors.append("metadata.name: missing")
    _check(obj, _KINDS[key], key[1], errors)
    return errors
