#!/usr/bin/env bash
# Draw the map of the shared data's task space: docs/img/map.png (and map.svg, map.html beside it).
#
#   scripts/map_shared.sh            # ~20 min the first time on a 2-core VM, seconds after
#
# Steps: provision ONNX Runtime + the default surrogate; build the release CLI; ingest the 33
# datasets of the shared data dir (`taskdb ingest dataset`) and the 8 third-party classifiers
# of the quality run (`taskdb ingest model --command`, wrappers in scripts/quality/classifiers/,
# pinned venv as in scripts/quality/run.sh) into .cache/map/shared.taskdb; then
# `taskdb map docs/img/map.{png,svg,html}`. The database is reused while scripts/quality/
# families.json and the taskdb version are unchanged (stamp .cache/map/shared.stamp).
#
# Environment:
#   TASKDB_SHARED_DATA  the shared data dir (default: ../shared/data)
#   QUALITY_VENV        classifier venv (default: .cache/quality-venv, as scripts/quality/run.sh)
#   MAP_OUT             output directory (default: docs/img)
#   MAP_ARGS            extra arguments to `taskdb map` (default: --colour-tag family)
#   TASKDB_BIN          use this taskdb binary instead of building target/release/taskdb
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${TASKDB_SHARED_DATA:-../shared/data}"
VENV="${QUALITY_VENV:-.cache/quality-venv}"
OUT="${MAP_OUT:-docs/img}"
FAM=scripts/quality/families.json
WORK=.cache/map
DB="$WORK/shared.taskdb"
[ -d "$DATA/datasets" ] || { echo "map_shared.sh: no datasets under '$DATA' (set TASKDB_SHARED_DATA)" >&2; exit 2; }
DATA="$(cd "$DATA" && pwd)"
log() { echo "[map $(date -u +%H:%M:%S)] $*" >&2; }

bash scripts/provision.sh >/dev/null
if [ -n "${TASKDB_BIN:-}" ]; then
  TASKDB="$TASKDB_BIN"
else
  cargo build --release --locked --bin taskdb
  TASKDB="$ROOT/target/release/taskdb"
fi
mkdir -p "$WORK" "$OUT"

STAMP="$(sha256sum "$FAM" | cut -d' ' -f1) $("$TASKDB" --version)"
if [ "$(cat "$WORK/shared.stamp" 2>/dev/null)" != "$STAMP" ]; then
  REQ=scripts/quality/requirements.txt
  REQ_SHA="$(sha256sum "$REQ" | cut -d' ' -f1)"
  if ! [ -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.quality-requirements.sha256" 2>/dev/null)" != "$REQ_SHA" ]; then
    log "classifier venv $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ"
    echo "$REQ_SHA" > "$VENV/.quality-requirements.sha256"
  fi
  case "$VENV" in /*) PY="$VENV/bin/python" ;; *) PY="$ROOT/$VENV/bin/python" ;; esac
  rm -rf "$DB" "$DB.index" "$DB.features" "$WORK/shared.stamp"
  # Every entry is tagged with its task family (families.json), so the map can colour by it.
  while IFS=$'\t' read -r name file family; do
    log "ingest dataset $name"
    "$TASKDB" -q --db "$DB" ingest dataset "$name" "$DATA/$file" --tag "family=$family" </dev/null
  done < <(python3 -c 'import json,sys
for n,v in json.load(open(sys.argv[1]))["datasets"].items(): print(n, v["file"], v["family"], sep="\t")' "$FAM")
  while IFS=$'\t' read -r name script family; do
    log "ingest model $name"
    "$TASKDB" -q --db "$DB" ingest model "$name" --tag "family=$family" \
      --command "$(printf '%q %q' "$PY" "$ROOT/scripts/quality/classifiers/$script")" </dev/null
  done < <(python3 -c 'import json,sys
for n,v in json.load(open(sys.argv[1]))["classifiers"].items(): print(n, v["script"], v["family"], sep="\t")' "$FAM")
  echo "$STAMP" > "$WORK/shared.stamp"
fi

for ext in png svg html; do
  rm -f "$OUT/map.$ext"
  # shellcheck disable=SC2086
  "$TASKDB" --db "$DB" map "$OUT/map.$ext" ${MAP_ARGS:---colour-tag family}
done
log "wrote $OUT/map.png, $OUT/map.svg, $OUT/map.html"
