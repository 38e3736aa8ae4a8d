#!/usr/bin/env bash
# The GPU run on the accelerator machine, from the repo root, as the last command of the plan in
# docs/gpu.md: join onnxruntime-gpu from its pieces, unpack .gpubundle, run bench.gpu_serving within
# its budget and leave every JSON and the log under $OUT. PROVIDER=cpu SMOKE=1 rehearses it on any
# machine with a Python 3.12.
set -euo pipefail
out=${OUT:?set OUT to the folder that comes back}
work=${ARTCTL_GPU_WORK:-/tmp/artctl-gpu}
python=${PYTHON:-python3}
provider=${PROVIDER:-cuda}
mkdir -p "$work/ortgpu" "$out"
if [ "$provider" = cuda ] && [ ! -f "$work/ortgpu/onnxruntime/__init__.py" ]; then
  # The pieces, copied to $work/parts by the earlier commands (or still in .ortgpu1..5 here).
  if compgen -G "$work/parts/part*" >/dev/null; then parts=("$work"/parts/part*); else parts=(.ortgpu*/part*); fi
  echo "joining ${#parts[@]} pieces of onnxruntime-gpu"
  cat "${parts[@]}" | xz -d | tar xf - -C "$work/ortgpu"
fi
for part in deps ort132; do [ -d "$work/$part" ] || tar -xJf ".gpubundle/$part.tar.xz" -C "$work"; done
gpu_site=""
[ "$provider" = cuda ] && gpu_site="$work/ortgpu:"
export PYTHONPATH="$gpu_site$work/deps:$PWD"
"$python" - <<'PY'
import onnxruntime as ort, sys
print(sys.version.split()[0], "onnxruntime", ort.__version__, "from", ort.__file__, ort.get_available_providers())
PY
nvidia-smi -L 2>/dev/null || true
args=(--provider "$provider" --out "$out" --reference bench/results/cpu-reference.json
  --ort-site "cpu-1.32.0=$work/ort132:$work/deps" --ort-site "machine-own=$work/deps")
[ -n "${SMOKE:-}" ] && args+=(--smoke)
# 8 minutes of stages (their budgets) plus a margin, inside the 10-minute command.
timeout "${LIMIT_S:-540}" "$python" -m bench.gpu_serving "${args[@]}" 2>&1 | tee "$out/gpu-serving.log"
