#!/usr/bin/env bash
# Part 2's one GPU command (docs/gpu.md), from the repo root: measure the emoji64-gpu recipe's
# img/s in bf16 and fp32, train it within the command's time, and pack what comes back under $OUT:
# the EMA generator cut in pieces of 15 MiB, its checkpoint's config and state, and the run's
# records (metrics, samples, loss curve) in one archive: at most 8 files of at most 16 MiB.
# DEVICE=cpu MINUTES=0.05 EXTRA="--resolution 16 --batch 8" rehearses it on any machine (a CI test).
set -euo pipefail
out=${OUT:?set OUT to the folder that comes back}
work=${ARTCTL_GPU_WORK:-/tmp/artctl-train}
python=${PYTHON:-python3}
data=${DATA:-data/emoji64.zip}
device=${DEVICE:-cuda}
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$work" "$out"
# The bundle's cp312 wheels, where the bundle came along and this Python can use them.
if [ -f .gpubundle/deps.tar.xz ] && "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
  [ -d "$work/deps" ] || tar -xJf .gpubundle/deps.tar.xz -C "$work"
  export PYTHONPATH="$work/deps:$PWD"
else
  export PYTHONPATH="$PWD"
fi
run="$work/run"
rm -rf "$run"
precision=fp32  # what the CPU trains in anyway
if [ "$device" = cuda ]; then  # bf16 only where it is faster: both measured, side by side
  for p in bf16 fp32; do
    "$python" bench/train.py --presets emoji64-gpu --device cuda --precision "$p" --steps 20 \
      --warmup 5 --out "$out/train-probe-$p.json" || echo "probe $p failed" >&2
  done
  precision=$("$python" - "$out" <<'PY'
import json, pathlib, sys
rates = {}
for p in ("bf16", "fp32"):
    try:
        rates[p] = json.loads((pathlib.Path(sys.argv[1]) / f"train-probe-{p}.json").read_text())["results"][0]["img_per_s"]
    except (OSError, KeyError, IndexError, ValueError):
        pass
print("fp32" if rates.get("fp32", 0) > rates.get("bf16", 0) else "bf16")
PY
)
fi
echo "training in $precision" | tee "$out/train.log"
started=$(date +%s)
set +e  # a crash late in training must still bring back the last checkpoint
"$python" -m artctl train "$data" --preset emoji64-gpu --device "$device" --precision "$precision" \
  --out "$run" --minutes "${MINUTES:-7}" "${extra[@]}" 2>&1 | tail -n 40 | tee -a "$out/train.log"
status=${PIPESTATUS[0]}
set -e
echo "train exit $status, wall s: $(( $(date +%s) - started ))" | tee -a "$out/train.log"
[ -f "$run/latest" ] || { echo "no checkpoint to bring back" >&2; exit 1; }
latest="$run/checkpoints/$(cat "$run/latest")"
split -b 15M -d "$latest/G_ema.safetensors" "$out/G_ema.safetensors.part"
sha256sum "$latest/G_ema.safetensors" | cut -d' ' -f1 > "$out/G_ema.sha256"
records=(config.json metrics.jsonl latest "checkpoints/$(cat "$run/latest")/config.json"
  "checkpoints/$(cat "$run/latest")/state.json")
samples=$(cd "$run" && ls samples-*.png 2>/dev/null | tail -n 1 || true)
for extra_file in loss-curve.png "$samples"; do  # absent after a crash: bring what there is
  if [ -n "$extra_file" ] && [ -f "$run/$extra_file" ]; then records+=("$extra_file"); fi
done
tar -C "$run" -czf "$out/run-records.tar.gz" "${records[@]}"
ls -l "$out"
