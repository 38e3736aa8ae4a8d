#!/usr/bin/env bash
# The GPU run on the accelerator machine, from the repo root, as the last command of the plan in
# docs/gpu.md: join onnxruntime-gpu from its pieces, unpack .gpubundle, check that a CUDA session
# really runs, then run bench.gpu_serving within LIMIT_S and leave every JSON and the log under
# $OUT. Arguments go on to bench.gpu_serving (e.g. --stages cross,sweep for a rerun).
# PROVIDER=cpu SMOKE=1 rehearses it on any machine with a Python 3.12.
set -euo pipefail
out=${OUT:?set OUT to the folder that comes back}
work=${ARTCTL_GPU_WORK:-/tmp/artctl-gpu}
python=${PYTHON:-python3}
provider=${PROVIDER:-cuda}
mkdir -p "$work" "$out"
if [ "$provider" = cuda ] && [ ! -f "$work/ortgpu/.joined" ]; then
  # The pieces, copied to $work/parts by the earlier commands (or still in .ortgpu1..5 here).
  if compgen -G "$work/parts/part*" >/dev/null; then parts=("$work"/parts/part*); else parts=(.ortgpu*/part*); fi
  echo "joining ${#parts[@]} pieces of onnxruntime-gpu"
  rm -rf "$work/ortgpu.tmp" && mkdir -p "$work/ortgpu.tmp"
  cat "${parts[@]}" | xz -d | tar xf - -C "$work/ortgpu.tmp"  # xz checks its CRC: a bad piece fails here
  rm -rf "$work/ortgpu" && mv "$work/ortgpu.tmp" "$work/ortgpu" && touch "$work/ortgpu/.joined"
fi
for part in deps ort132; do [ -d "$work/$part" ] || tar -xJf ".gpubundle/$part.tar.xz" -C "$work"; done
gpu_site=""
if [ "$provider" = cuda ]; then
  # onnxruntime-gpu looks for CUDA and cuDNN beside itself; they come with the machine's torch
  # (the nvidia-* wheels in its site-packages): link them there and put them on the loader path.
  nv=$("$python" -c 'import nvidia, os; print(next(p for p in nvidia.__path__ if os.path.isdir(os.path.join(p, "cudnn"))))')
  ln -sfn "$nv" "$work/ortgpu/nvidia"
  libs=$(find "$nv" -maxdepth 3 -type d -name lib | tr '\n' ':')
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
  gpu_site="$work/ortgpu:"
fi
export PYTHONPATH="$gpu_site$work/deps:$PWD"
PROVIDER=$provider "$python" - <<'PY'
import os, sys
import onnxruntime as ort
print(sys.version.split()[0], "onnxruntime", ort.__version__, "from", ort.__file__, ort.get_available_providers())
if os.environ["PROVIDER"] == "cuda":  # fail in seconds, with the loader's message, not after minutes
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    s = ort.InferenceSession("artctl/models/default.onnx", providers=["CUDAExecutionProvider"])
    if s.get_providers()[0] != "CUDAExecutionProvider":
        sys.exit(f"the CUDA EP did not load: {s.get_providers()}")
    print("CUDA session ok:", s.get_providers())
PY
nvidia-smi -L 2>/dev/null || true
args=(--provider "$provider" --out "$out" --reference bench/results/cpu-reference.json
  --ort-site "cpu-1.32.0=$work/ort132:$work/deps" --ort-site "machine-own=$work/deps")
[ -n "${SMOKE:-}" ] && args+=(--smoke)
# LIMIT_S: what the command may take; set it under the time the loan has left. bench.gpu_serving
# writes what it has (every finished stage, the running one's part) when the timeout stops it.
timeout "${LIMIT_S:-540}" "$python" -m bench.gpu_serving "${args[@]}" "$@" 2>&1 | tee "$out/gpu-serving.log"
