"""RFC 7386 JSON merge patch, as the Kubernetes API server applies
application/merge-patch+json: for tests that check a patch without a server."""

from __future__ import annotations

import copy
from typing import Any


def merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out
