"""`make images`: both images, each built only when what goes into it changed.

The cache is the image tool's own storage, outside the clone: each build is also tagged
`<repo>/<name>:inputs-<key>`, the key hashing the Dockerfile, every file it copies, the base
image and the build arguments (finrisk.images.spec). A fresh clone of the same commit finds
that tag and only re-tags; a changed source file rebuilds the layers from its COPY on (the
dependency layer stays cached while the lock is unchanged).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from finrisk.errors import FinriskError
from finrisk.images.spec import IMAGES, ImageSpec, inputs_key
from finrisk.images.tool import ImageTool
from finrisk.settings import ImagesSettings
from finrisk.version import __version__

DEFAULT_BASE = ImagesSettings.model_fields["base_image"].default
# What scripts/make-local-base.sh makes when no registry serves the default base.
LOCAL_BASE = "localhost/finrisk-base:python3.11-bookworm"
KEY_CHARS = 16


@dataclass(frozen=True)
class Built:
    name: str
    ref: str
    cached_ref: str
    size_bytes: int
    cached: bool
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def image_ref(settings: ImagesSettings, name: str) -> str:
    return f"{settings.repo}/{name}:{settings.tag}"


def ca_bundle(settings: ImagesSettings) -> Path | None:
    """The given bundle, else the one pip or OpenSSL is told to trust here."""
    if settings.ca_bundle is not None:
        if not settings.ca_bundle.is_file():
            raise FinriskError(f"--ca-bundle {settings.ca_bundle} is not a file")
        return settings.ca_bundle
    for variable in ("PIP_CERT", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    return None


def resolve_base(tool: ImageTool, base_image: str, root: Path) -> tuple[str, str]:
    """(base ref, its image id): found locally, else pulled; the default base, when it is
    neither, is made from Debian's packages by scripts/make-local-base.sh."""
    for ref in (base_image, *([LOCAL_BASE] if base_image == DEFAULT_BASE else [])):
        image_id = tool.image_id(ref)
        if image_id:
            return ref, image_id
    if tool.pull(base_image):
        return base_image, tool.image_id(base_image) or ""
    if base_image != DEFAULT_BASE:
        raise FinriskError(f"the base image {base_image} is neither here nor pullable")
    print(f"{base_image} cannot be pulled: making {LOCAL_BASE} from Debian's packages", flush=True)
    script = root / "scripts" / "make-local-base.sh"
    if subprocess.run([str(script), LOCAL_BASE], check=False).returncode != 0:
        raise FinriskError(f"{script} could not make the local base image (output above)")
    image_id = tool.image_id(LOCAL_BASE)
    if not image_id:
        raise FinriskError(f"{script} made no {LOCAL_BASE}")
    return LOCAL_BASE, image_id


def build_images(
    tool: ImageTool,
    settings: ImagesSettings,
    root: Path,
    specs: tuple[ImageSpec, ...] = IMAGES,
) -> list[Built]:
    base, base_id = resolve_base(tool, settings.base_image, root)
    bundle = ca_bundle(settings)
    built = []
    for spec in specs:
        started = time.monotonic()
        key = inputs_key(spec, root, base_id, {"BASE_IMAGE": base})[:KEY_CHARS]
        ref = image_ref(settings, spec.name)
        cached_ref = f"{settings.repo}/{spec.name}:inputs-{key}"
        cached = tool.image_id(cached_ref) is not None
        if cached:
            tool.tag(cached_ref, ref)
        else:
            # The code version names the inputs: the same for any clone of the same sources.
            args = {"BASE_IMAGE": base, "FINRISK_CODE_VERSION": f"{__version__}+inputs.{key}"}
            tool.build(root / spec.dockerfile, root, [cached_ref, ref], args, bundle)
        built.append(
            Built(
                name=spec.name,
                ref=ref,
                cached_ref=cached_ref,
                size_bytes=tool.size(ref),
                cached=cached,
                seconds=round(time.monotonic() - started, 1),
            )
        )
    return built
