"""Compile the retraining pipeline: IR YAML and Kubernetes-native Pipeline + PipelineVersion.

    <out>/finrisk-retraining.yaml        IR YAML: upload through the UI or `kfp.Client`
    <out>/finrisk-retraining.k8s.yaml    pipelines.kubeflow.org/v2beta1 Pipeline +
                                         PipelineVersion: `kubectl apply -f`

A PipelineVersion is immutable on a cluster, so its name carries a hash of the compiled spec
(pipeline spec + platform spec): any change to the DAG, a component, its image or a default
gives a new version name, and recompiling unchanged code gives the same one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kfp.compiler import Compiler, KubernetesManifestOptions

from finrisk.pipelines.retraining import PIPELINE_NAME, retraining_pipeline
from finrisk.version import __version__

IR_FILE = f"{PIPELINE_NAME}.yaml"
MANIFEST_FILE = f"{PIPELINE_NAME}.k8s.yaml"
HASH_LENGTH = 12


@dataclass(frozen=True)
class CompiledPipeline:
    ir_path: Path
    manifest_path: Path
    pipeline_name: str
    version_name: str
    spec_hash: str

    def to_dict(self) -> dict[str, str]:
        return {
            "ir": str(self.ir_path),
            "manifests": str(self.manifest_path),
            "pipeline": self.pipeline_name,
            "version": self.version_name,
            "spec_hash": self.spec_hash,
        }


def spec_hash(ir_path: str | Path) -> str:
    """sha256 of the IR documents in a canonical JSON form (key order and layout ignored)."""
    documents = [d for d in yaml.safe_load_all(Path(ir_path).read_text(encoding="utf-8")) if d]
    canonical = json.dumps(documents, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def version_name(digest: str, pipeline_name: str = PIPELINE_NAME) -> str:
    return f"{pipeline_name}-{digest[:HASH_LENGTH]}"


def compile_pipeline(out_dir: str | Path, namespace: str | None = None) -> CompiledPipeline:
    """Write the IR and the Kubernetes manifests to `out_dir` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ir_path = out / IR_FILE
    Compiler().compile(retraining_pipeline, str(ir_path))
    digest = spec_hash(ir_path)
    version = version_name(digest)
    manifest_path = out / MANIFEST_FILE
    Compiler().compile(
        retraining_pipeline,
        str(manifest_path),
        kubernetes_manifest_format=True,
        kubernetes_manifest_options=KubernetesManifestOptions(
            pipeline_name=PIPELINE_NAME,
            pipeline_display_name=PIPELINE_NAME,
            pipeline_version_name=version,
            pipeline_version_display_name=f"{PIPELINE_NAME} {__version__} ({digest[:HASH_LENGTH]})",
            namespace=namespace,
            include_pipeline_manifest=True,
        ),
    )
    return CompiledPipeline(ir_path, manifest_path, PIPELINE_NAME, version, digest)


def load_manifests(path: str | Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d]
