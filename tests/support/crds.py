"""Validate Kubernetes manifests against the upstream CRD schemas in third_party/crds.

This is the check `kubectl apply` makes on a cluster: structural schema validation of the
custom resource. Two things are stricter than a plain JSON-schema check, to catch what a cluster
would reject or silently drop: `additionalProperties: false` wherever a schema lists properties
(a misspelt field fails here instead of vanishing there), and a DNS-1123 `metadata.name`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from finrisk.stack.kube import CRDS as CRD_DIR

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


def require_crds() -> Path:
    """The CRD folder (in the repository: a missing one is a failure, never a skip)."""
    assert CRD_DIR.is_dir(), f"the upstream CRD schemas are missing from {CRD_DIR}"
    return CRD_DIR


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=1)
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(require_crds().rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # metadata is validated by the API server itself, not by the CRD schema
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                api_version = f"{spec['group']}/{version['name']}"
                schemas[(api_version, spec["names"]["kind"])] = _strict(schema)
    return schemas


def known_kinds() -> list[tuple[str, str]]:
    return sorted(_schemas())


def validate_manifest(obj: dict[str, Any]) -> list[str]:
    """Every problem with one custom resource; an empty list when a cluster would accept it."""
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    schema = _schemas().get(key)
    if schema is None:
        return [f"no CRD for apiVersion={key[0]} kind={key[1]} (known: {known_kinds()})"]
    errors = []
    name = (obj.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        errors.append("metadata.name: missing")
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        errors.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        errors.append(f"{path}: {error.message}")
    return errors


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs
