#!/usr/bin/env bash
# Packs what the GPU machine lacks into git-ignored files under .gpubundle/ that travel with one
# command (docs/gpu.md): the project's runtime dependencies as cp312 manylinux wheels installed
# into deps/ (its Python has grpcio and protobuf of other versions and no health,
# reflection, pydantic-settings or aiohttp), and the onnxruntime 1.32.0 CPU build into ort132/, so
# the cross-machine stage compares the same onnxruntime on two CPUs. Versions come from
# constraints.txt, as on every other machine; onnxconverter-common is for the fp16 exports.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
python=${PYTHON:-.venv/bin/python}
deps=(annotated-doc grpcio grpcio-health-checking grpcio-reflection protobuf pydantic pydantic_core pydantic-settings
  python-dotenv typing-inspection annotated-types typing_extensions aiohttp aiohappyeyeballs aiosignal
  attrs frozenlist multidict yarl propcache idna typer shellingham rich markdown-it-py mdurl
  Pygments prometheus_client safetensors onnxconverter-common)
pins=()
for name in "${deps[@]}"; do
  pin=$(grep -iE "^${name//[-_]/[-_]}==" constraints.txt || true)
  [ -n "$pin" ] || { echo "no pin for $name in constraints.txt" >&2; exit 1; }
  pins+=("$pin")
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target=(--only-binary=:all: --no-deps --python-version 3.12 --implementation cp --abi cp312
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$python" -m pip install -q --target "$tmp/deps" "${target[@]}" "${pins[@]}"
"$python" -m pip install -q --target "$tmp/ort132" "${target[@]}" "$(grep -E '^onnxruntime==' constraints.txt)"
rm -rf "$tmp"/deps/bin "$tmp"/ort132/bin
mkdir -p .gpubundle
rm -f .gpubundle/*.tar.xz
# Two files: part 2's training command carries deps alone (beside the emoji set); part 1 both.
for part in deps ort132; do tar -C "$tmp" -cf - "$part" | xz -6 -T0 > ".gpubundle/$part.tar.xz"; done
ls -l .gpubundle/
