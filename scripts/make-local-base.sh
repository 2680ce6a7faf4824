#!/usr/bin/env bash
# A Python 3.11 base image made from Debian's own packages, for machines that reach Debian's
# mirror but no container registry (`FROM python:3.11-slim` cannot be pulled there).
# debootstrap's minimal bookworm plus python3 (3.11), pip and venv, imported with buildah and
# tagged TAG, so a Dockerfile's FROM resolves with --pull=never. Run by `make images` when the
# default base can be neither found nor pulled.
#   scripts/make-local-base.sh TAG [MIRROR]
set -euo pipefail
tag=${1:?usage: make-local-base.sh TAG [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
for tool in debootstrap buildah; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (make images installs it)" >&2; exit 1; }
done
work=$(mktemp -d -t finrisk-base-XXXXXX)
container=""
cleanup() {
  if [ -n "$container" ]; then buildah umount "$container" >/dev/null 2>&1 || true; buildah rm "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
echo "making the local base $tag from Debian bookworm ($mirror)" >&2
# What python:3.11-slim gives a Dockerfile: python/python3, pip, venv; libgomp1 for
# scikit-learn and ONNX Runtime; ca-certificates for TLS at run time.
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,python-is-python3,libgomp1,ca-certificates \
  bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# No package lists or caches in the image (apt can fetch them again).
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin \
  "$work/rootfs/var/cache/apt/archives/"*.deb
container=$(buildah from scratch)
mnt=$(buildah mount "$container")
tar -C "$work/rootfs" -c . | tar -C "$mnt" -x
buildah umount "$container" >/dev/null
# Debian marks its Python externally managed; an image owns its interpreter.
buildah config --env PIP_BREAK_SYSTEM_PACKAGES=1 --env LANG=C.UTF-8 \
  --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd python3 --label org.opencontainers.image.base.name=debian:bookworm "$container"
buildah commit -q --rm "$container" "$tag" >/dev/null
container=""
echo "$tag"
