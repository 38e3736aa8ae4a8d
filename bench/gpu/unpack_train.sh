#!/usr/bin/env bash
# Back on CPU: turn what bench/gpu/train.sh brought back (FROM) into a generator-only run folder
# (RUN) that `artctl metrics fid` scores and `artctl export` exports; it cannot resume (no D).
set -euo pipefail
from=${1:?usage: unpack_train.sh FROM RUN}
run=${2:?usage: unpack_train.sh FROM RUN}
[ ! -e "$run" ] || { echo "$run exists: choose a new folder" >&2; exit 1; }
mkdir -p "$run"
tar -C "$run" -xzf "$from/run-records.tar.gz"
latest="$run/checkpoints/$(cat "$run/latest")"
cat "$from"/G_ema.safetensors.part* > "$latest/G_ema.safetensors"
echo "$(cat "$from/G_ema.sha256")  $latest/G_ema.safetensors" | sha256sum -c --quiet
echo "$run: $(cat "$run/latest"), G_ema verified"
