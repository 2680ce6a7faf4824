#!/usr/bin/env bash
# `make images` and the image tests build with docker (when its daemon answers), else with
# Debian's buildah, which builds and runs images without a daemon (--isolation chroot), and
# make a local base with debootstrap when no registry serves python:3.11-slim. Install buildah
# and debootstrap when missing, as ensure-chromium.sh installs the browser.
set -euo pipefail
missing=()
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "installing Debian's ${missing[*]} for the container images" >&2
if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
  && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null; }; then
  echo "error: could not install ${missing[*]} (apt-get failed above); the image build and" \
    "its tests need buildah (or a docker daemon) and debootstrap" >&2
  exit 1
fi
