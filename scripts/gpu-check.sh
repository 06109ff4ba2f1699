#!/usr/bin/env bash
# GPU check of the surrogate runtime, for a machine with an NVIDIA GPU and driver:
#   1. provisions the CPU pieces (scripts/provision.sh: model, tokenizer, manifest),
#   2. installs onnxruntime-gpu==1.31.1 with its CUDA/cuDNN runtime wheels from PyPI
#      (`onnxruntime-gpu[cuda,cudnn]`) into a venv under $TASKDB_HOME/gpu-venv,
#   3. points ORT_DYLIB_PATH at onnxruntime-gpu's libonnxruntime.so and LD_LIBRARY_PATH at the
#      nvidia/*/lib directories of those wheels,
#   4. runs the gpu_check example: CPU-vs-CUDA parity (min cosine >= 0.999) and throughput at
#      batch 256, printing one summary line ("gpu-check: PASS|FAIL ...").
# Usage: scripts/gpu-check.sh [N_SENTENCES]    (default 4096; keeps the whole check to minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-4096}"
GPU_VERSION=1.31.1
HOME_DIR="${TASKDB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/taskdb}"
VENV="$HOME_DIR/gpu-venv"

command -v nvidia-smi >/dev/null 2>&1 || { echo "gpu-check: FAIL no nvidia-smi: no NVIDIA driver on this machine"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true

scripts/provision.sh --quiet >&2
PY="$(command -v python3)"
if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "$VENV"; fi
if ! "$VENV/bin/python" -c "import onnxruntime as o; assert o.__version__ == '$GPU_VERSION'; assert 'CUDAExecutionProvider' in o.get_available_providers()" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "onnxruntime-gpu[cuda,cudnn]==$GPU_VERSION" >&2
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ORT_LIB="$(ls "$SITE"/onnxruntime/capi/libonnxruntime.so.$GPU_VERSION)"
NV_LIBS="$(ls -d "$SITE"/nvidia/*/lib 2>/dev/null | paste -sd: -)"
export ORT_DYLIB_PATH="$ORT_LIB"
export LD_LIBRARY_PATH="$SITE/onnxruntime/capi${NV_LIBS:+:$NV_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "gpu-check: ORT_DYLIB_PATH=$ORT_DYLIB_PATH" >&2
cargo run --quiet --release -p taskdb-surrogate --example gpu_check -- "$HOME_DIR/surrogates/all-MiniLM-L6-v2" "$N"
