#!/usr/bin/env bash
# Run CI (.ci/run, i.e. `make test`) on a fresh clone of HEAD, as CI does, without touching the
# stack you may have running: the clone's services use other ports and its own .finrisk/.
#   scripts/ci-fresh-clone.sh [DIR]      (default DIR: a new temporary folder)
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
dir=${1:-$(mktemp -d -t finrisk-ci-XXXXXX)}
git clone -q "$repo" "$dir/finrisk"
cd "$dir/finrisk"
echo "fresh clone in $dir/finrisk; log in $dir/ci.log"
FINRISK_KAFKA__PORT=29092 FINRISK_KAFKA__CONTROLLER_PORT=29093 FINRISK_MLFLOW__PORT=5066 \
FINRISK_BIGQUERY__PORT=9150 FINRISK_BIGQUERY__GRPC_PORT=9160 FINRISK_PREDICTOR__PORT=8180 \
  bash .ci/run 2>&1 | tee "$dir/ci.log"
