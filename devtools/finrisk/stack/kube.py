"""A real Kubernetes API server on loopback (etcd + kube-apiserver, no controllers), for what the
API server itself decides: schema validation of built-in objects and CRDs, server-side apply
and dry run, merge semantics, RBAC.

Neither binary ships on PyPI or Debian; both are built once from the Go module proxy into the
download cache, keyed by version (~5 minutes on 2 cores, then reused): etcd through a wrapper
module whose main calls `etcdmain.Main` (the server module's own go.mod has replace directives,
so `go install` refuses it), kube-apiserver through a wrapper module that requires
`k8s.io/kubernetes` and pins every staging module with a replace. Started, the service writes
a kubeconfig (an admin token; the certificate the server made for itself) under its folder and
installs the upstream CRDs (KFP, KServe, KEDA, Prometheus-operator) from `third_party/crds`.
No controller runs: an object's status is whatever a test writes.
"""

from __future__ import annotations

import os
import secrets
import shlex
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import yaml

from finrisk.errors import FinriskError
from finrisk.settings import LOOPBACK
from finrisk.stack.service import Service

# Staging modules of k8s.io/kubernetes: each must be pinned to the matching v0.x release.
_STAGING = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
)
CRDS = Path(__file__).resolve().parents[3] / "third_party" / "crds"
ADMIN = "finrisk-admin"


class KubeApiServer(Service):
    name = "kube"
    default = False  # `finrisk stack up kube`: tests and manifests work, not the demo
    start_timeout = 120.0

    @property
    def ports(self) -> Sequence[int]:
        kube = self.settings.kube
        return (kube.port, kube.etcd_port, kube.etcd_peer_port)

    @property
    def address(self) -> str:
        return f"https://{LOOPBACK}:{self.settings.kube.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def bin_dir(self) -> Path:
        kube = self.settings.kube
        return self.settings.cache_dir / "kube" / f"{kube.version}-etcd-{kube.etcd_version}" / "bin"

    @property
    def ca_file(self) -> Path:
        """The certificate the server made for itself at its first start, with its own CA:
        what clients verify it against."""
        return self.dir / "certs" / "apiserver.crt"

    @property
    def token(self) -> str:
        return (self.dir / "admin.token").read_text().strip()

    def prepare(self) -> None:
        self.build()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "etcd").mkdir(exist_ok=True)
        (self.dir / "certs").mkdir(exist_ok=True)
        token_file = self.dir / "admin.token"
        if not token_file.exists():
            token_file.write_text(secrets.token_hex(24))
        (self.dir / "tokens.csv").write_text(f"{self.token},{ADMIN},{ADMIN},system:masters\n")
        key, public = self.dir / "sa.key", self.dir / "sa.pub"
        if not key.exists():
            _write_key_pair(key, public)

    def build(self) -> None:
        """etcd and kube-apiserver into the download cache, unless already there."""
        etcd, apiserver = self.bin_dir / "etcd", self.bin_dir / "kube-apiserver"
        if etcd.exists() and apiserver.exists():
            return
        self.require_tools("go")
        kube = self.settings.kube
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.bin_dir.parent) as scratch:
            work = Path(scratch)
            if not etcd.exists():
                _go_module(
                    work / "etcd",
                    "finrisk.local/etcd",
                    [f"go.etcd.io/etcd/server/v3 {kube.etcd_version}"],
                    [],
                    main=_ETCD_MAIN,
                )
                _go(work / "etcd", "build", "-trimpath", "-o", str(etcd), ".")
            if not apiserver.exists():
                minor = kube.version.split(".")[1]
                staging = f"v0.{minor}.{kube.version.split('.')[2]}"
                _go_module(
                    work / "apiserver",
                    "finrisk.local/kube-apiserver",
                    [f"k8s.io/kubernetes {kube.version}"],
                    [f"k8s.io/{m} => k8s.io/{m} {staging}" for m in _STAGING],
                    tools='import _ "k8s.io/kubernetes/cmd/kube-apiserver"',
                )
                # kubectl and clients parse the server's version: it must be set.
                version = (
                    f"-X k8s.io/component-base/version.gitVersion={kube.version} "
                    f"-X k8s.io/component-base/version.gitMajor=1 "
                    f"-X k8s.io/component-base/version.gitMinor={minor}"
                )
                _go(
                    work / "apiserver",
                    "build",
                    "-trimpath",
                    "-ldflags",
                    f"-s -w {version}",
                    "-o",
                    str(apiserver),
                    "k8s.io/kubernetes/cmd/kube-apiserver",
                )

    def command(self) -> Sequence[str]:
        kube = self.settings.kube
        peer = f"http://{LOOPBACK}:{kube.etcd_peer_port}"
        client = f"http://{LOOPBACK}:{kube.etcd_port}"
        etcd = [
            str(self.bin_dir / "etcd"),
            "--name=finrisk",
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=finrisk={peer}",
            "--log-level=warn",
        ]
        apiserver = [
            str(self.bin_dir / "kube-apiserver"),
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={kube.port}",
            f"--etcd-servers={client}",
            f"--cert-dir={self.dir / 'certs'}",
            f"--service-account-key-file={self.dir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.dir / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--token-auth-file={self.dir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--v=0",
        ]
        # One process group for both: `down` ends the group, so etcd goes with the API server.
        script = (
            f"{_quote(etcd)} >> {_quote([str(self.dir / 'etcd.log')])} 2>&1 &\n"
            f"exec {_quote(apiserver)}"
        )
        return ["sh", "-c", script]

    def healthy(self) -> bool:
        if not self.ca_file.exists():
            return False  # written before the server listens
        try:
            response = httpx.get(
                f"{self.address}/readyz",
                headers={"Authorization": f"Bearer {self.token}"},
                verify=ssl.create_default_context(cafile=self.ca_file),
                timeout=2,
            )
        except (httpx.HTTPError, OSError):
            return False
        return response.status_code == 200

    def up(self) -> bool:
        started = super().up()
        self.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig()))
        self.install_crds()
        return started

    def install_crds(self, timeout_s: float = 60.0) -> None:
        """Apply the upstream CRDs server-side and wait until each is established."""
        if not CRDS.is_dir():
            raise FinriskError(f"the upstream CRDs are missing from {CRDS}")
        files = sorted(CRDS.rglob("*.yaml"))
        self.kubectl("apply", "--server-side", "--force-conflicts", *[f"-f={f}" for f in files])
        names = [
            doc["metadata"]["name"]
            for f in files
            for doc in yaml.safe_load_all(f.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"
        ]
        deadline = time.monotonic() + timeout_s
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={max(1, int(deadline - time.monotonic()))}s",
            *[f"crd/{name}" for name in names],
        )

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        """Run kubectl against this server; its output, or FinriskError naming what failed."""
        self.require_tools("kubectl")
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise FinriskError(f"kubectl {' '.join(args[:2])}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def _kubeconfig(self) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "finrisk-local",
                    "cluster": {
                        "server": self.address,
                        "certificate-authority": str(self.ca_file),
                    },
                }
            ],
            "users": [{"name": ADMIN, "user": {"token": self.token}}],
            "contexts": [
                {"name": "finrisk-local", "context": {"cluster": "finrisk-local", "user": ADMIN}}
            ],
            "current-context": "finrisk-local",
        }


_ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def _go_module(
    folder: Path,
    module: str,
    requires: list[str],
    replaces: list[str],
    *,
    main: str | None = None,
    tools: str | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"module {module}", "", "go 1.24", ""]
    lines += [f"require {r}" for r in requires]
    if replaces:
        lines += ["", "replace (", *[f"\t{r}" for r in replaces], ")"]
    (folder / "go.mod").write_text("\n".join(lines) + "\n")
    if main is not None:
        (folder / "main.go").write_text(main)
    if tools is not None:
        (folder / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\n{tools}\n")
    _go(folder, "mod", "tidy")


def _go(folder: Path, *args: str) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    done = subprocess.run(
        ["go", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        raise FinriskError(
            f"building the Kubernetes API server: go {' '.join(args[:2])} failed:\n"
            + (done.stdout + done.stderr)[-2000:]
        )


def _write_key_pair(key: Path, public: Path) -> None:
    """The service-account signing key and its public half (RSA 2048, PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in argv)
