#!/usr/bin/env bash
# Measure taskdb's task-embedding quality end to end through the real `taskdb` CLI and write
# docs/QUALITY.md (issue 4, "Evidence").
#
#   scripts/quality/run.sh
#
# Steps: provision ONNX Runtime + the default surrogate; build the release CLI; a pinned Python
# venv for the 8 classifier wrappers; a fresh database; `taskdb ingest dataset` for the 33
# datasets of the shared data dir and `taskdb ingest model --command` for the 8 classifiers;
# `taskdb knn ... --json` for every entry and method; scripts/quality/report.py turns the
# answers into docs/QUALITY.md (nn, MAP, classifier ranks per method, timings, fingerprints).
#
# Environment:
#   TASKDB_SHARED_DATA  the shared data dir (default: ../shared/data, relative to the repo root)
#   QUALITY_VENV        classifier venv (default: .cache/quality-venv; reused when its
#                       requirements stamp matches scripts/quality/requirements.txt)
#   QUALITY_OUT         report path (default: docs/QUALITY.md)
#   QUALITY_METHODS     methods to measure (default: "fisher scatter tuned textemb")
#   QUALITY_LIVE_METHODS  methods also measured with `knn --centre live` (default: all four)
#   QUALITY_WARM_REFERENCES=1  reuse taskdb's per-machine cache of frozen references (default:
#                       build them in this run, so ingestion times are cold)
# Work files (database, knn answers, logs, timings): .cache/quality/ (gitignored).
# Takes ~40-60 minutes on a 2-core VM (the CLI encodes ~60k dataset texts + 3k probes; the
# held-out step encodes them again in Python, once per machine).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE=scripts/quality
DATA="${TASKDB_SHARED_DATA:-../shared/data}"
VENV="${QUALITY_VENV:-.cache/quality-venv}"
OUT_DOC="${QUALITY_OUT:-docs/QUALITY.md}"
METHODS="${QUALITY_METHODS:-fisher scatter tuned textemb}"
LIVE_METHODS="${QUALITY_LIVE_METHODS:-scatter fisher tuned textemb}"
K=100
WORK=.cache/quality/run
DB=.cache/quality/quality.taskdb
TASKDB="$ROOT/.cache/quality/bin/taskdb"   # copied from target/release after the build

[ -d "$DATA/datasets" ] || { echo "run.sh: no datasets under '$DATA' (set TASKDB_SHARED_DATA to the shared data dir)" >&2; exit 2; }
DATA="$(cd "$DATA" && pwd)"
command -v python3 >/dev/null || { echo "run.sh: python3 is required" >&2; exit 2; }

now() { date +%s.%N; }
T_START="$(now)"
DATE_START="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# The last completed run's work files are kept as $WORK.prev: report.py checks the answers are
# identical (a run that stopped early is discarded).
if [ -f "$WORK/summary.json" ]; then rm -rf "$WORK.prev" && mv "$WORK" "$WORK.prev"; else rm -rf "$WORK"; fi
mkdir -p "$WORK/knn" "$WORK/logs" "$WORK/info"
echo "$DATE_START" > "$WORK/info/started.txt"
{ git rev-parse --short=12 HEAD 2>/dev/null || echo "?"; } > "$WORK/info/commit.txt"
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] ||
  echo "with uncommitted changes to tracked files" >> "$WORK/info/commit.txt"
TIMES="$WORK/timings.tsv"
: > "$TIMES"
log() { echo "[quality $(date -u +%H:%M:%S)] $*" >&2; }
# timed LABEL LOGFILE CMD...: runs CMD with stderr (and stdout) in LOGFILE, records wall seconds.
# With OUTFILE set, stdout goes there instead. A failure is fatal: the log is shown, the run stops.
timed() {
  local label="$1" logf="$2"; shift 2
  local t0 t1 rc=0
  t0="$(now)"
  if [ -n "${OUTFILE:-}" ]; then
    "$@" < /dev/null > "$OUTFILE" 2> "$logf" || rc=$?
  else
    "$@" < /dev/null > "$logf" 2>&1 || rc=$?
  fi
  t1="$(now)"
  local secs
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  printf '%s\t%s\t%s\n' "$label" "$secs" "$rc" >> "$TIMES"
  if [ "$rc" != 0 ]; then
    log "FAILED ($rc): $label; log $logf:"
    tail -n 40 "$logf" >&2
    exit "$rc"
  fi
  log "$label: ${secs}s"
}

# 1. Runtime and CLI.
timed provision "$WORK/logs/provision.log" bash scripts/provision.sh
timed build "$WORK/logs/build.log" cargo build --release --locked --bin taskdb
# A private copy: target/ is shared, and another build must not swap the binary mid-run.
mkdir -p "$(dirname "$TASKDB")"
cp target/release/taskdb "$TASKDB.tmp" && mv "$TASKDB.tmp" "$TASKDB"
"$TASKDB" ingest --help > /dev/null || { echo "run.sh: this taskdb has no 'ingest' command" >&2; exit 1; }

# Frozen references (k-means pseudo-tasks on U) are cached per machine in $TASKDB_HOME/references.
# By default this run builds them afresh in a private TASKDB_HOME (the provisioned runtime and
# surrogate linked in), so the ingestion times are those of a first ingestion on a new machine;
# QUALITY_WARM_REFERENCES=1 uses the normal cache instead.
REAL_HOME="${TASKDB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/taskdb}"
if [ "${QUALITY_WARM_REFERENCES:-0}" = 1 ]; then
  echo "warm: the user's reference cache $REAL_HOME/references ($(ls "$REAL_HOME/references" 2>/dev/null | wc -l) files before ingestion)" > "$WORK/info/references.txt"
else
  QHOME="$ROOT/.cache/quality/taskdb-home"
  rm -rf "$QHOME"
  mkdir -p "$QHOME"
  ln -s "$REAL_HOME/onnxruntime" "$QHOME/onnxruntime"
  ln -s "$REAL_HOME/surrogates" "$QHOME/surrogates"
  export TASKDB_HOME="$QHOME"
  echo "cold: built in this run (private reference cache .cache/quality/taskdb-home/references)" > "$WORK/info/references.txt"
fi

# 2. Classifier venv (pinned), reused when the requirements are unchanged.
REQ="$HERE/requirements.txt"
REQ_SHA="$(sha256sum "$REQ" | cut -d' ' -f1)"
setup_venv() {
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.quality-requirements.sha256" 2>/dev/null)" = "$REQ_SHA" ]; then
    echo "reusing $VENV"
    return 0
  fi
  # (runs under `|| rc=$?`, where set -e is off: every step checks its status)
  python3 -m venv "$VENV" || return 1
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ" || return 1
  echo "$REQ_SHA" > "$VENV/.quality-requirements.sha256"
}
timed venv "$WORK/logs/venv.log" setup_venv
case "$VENV" in
  /*) PY="$VENV/bin/python" ;;
  *) PY="$ROOT/$VENV/bin/python" ;;
esac

# 3. Fresh database; ingest the datasets of families.json (33) and the 8 classifiers.
rm -rf "$DB" "$DB.index" "$DB.features"   # database, its index dir and its feature cache
T_INGEST="$(now)"
while IFS=$'\t' read -r name file; do
  OUTFILE="$WORK/logs/dataset-$name.json" timed "ingest dataset $name" "$WORK/logs/dataset-$name.log" \
    "$TASKDB" --db "$DB" ingest dataset "$name" "$DATA/$file" --json
done < <(python3 -c 'import json,sys
for n,v in json.load(open(sys.argv[1]))["datasets"].items(): print(n, v["file"], sep="\t")' "$HERE/families.json")
while IFS=$'\t' read -r name script; do
  cmd="$(printf '%q %q' "$PY" "$ROOT/$HERE/classifiers/$script")"
  OUTFILE="$WORK/logs/model-$name.json" timed "ingest model $name" "$WORK/logs/model-$name.log" \
    "$TASKDB" --db "$DB" ingest model "$name" --command "$cmd" --json
done < <(python3 -c 'import json,sys
for n,v in json.load(open(sys.argv[1]))["classifiers"].items(): print(n, v["script"], sep="\t")' "$HERE/families.json")
T_INGEST_END="$(now)"
printf 'ingestion total\t%s\t0\n' "$(awk -v a="$T_INGEST" -v b="$T_INGEST_END" 'BEGIN { printf "%.2f", b - a }')" >> "$TIMES"

# 4. Fingerprints and integrity (recorded; a failure is reported in the document, not fatal).
info() {
  local out="$1"; shift
  "$TASKDB" --db "$DB" "$@" > "$WORK/info/$out.json" 2> "$WORK/info/$out.err" || echo $? > "$WORK/info/$out.rc"
}
info surrogate surrogate info --json
info probe probe info --json
info stats stats --json
info check check --json

# 5. knn answers: every entry x method, all kinds and --kind dataset; the default method
# (no --method) for comparison. Failures are recorded (.rc/.err) and judged by report.py
# (textemb must refuse models).
T_KNN="$(now)"
names="$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); print(" ".join(list(d["datasets"])+list(d["classifiers"])))' "$HERE/families.json")"
knn() {
  local out="$1"; shift
  "$TASKDB" --db "$DB" knn "$@" -k "$K" --json > "$out.json" 2> "$out.err" || echo $? > "$out.rc"
}
for m in $METHODS default; do
  mkdir -p "$WORK/knn/$m"
  for n in $names; do
    if [ "$m" = default ]; then
      knn "$WORK/knn/$m/$n.ds" "$n" --kind dataset
      knn "$WORK/knn/$m/$n.all" "$n"
    else
      knn "$WORK/knn/$m/$n.ds" "$n" --method "$m" --kind dataset
      knn "$WORK/knn/$m/$n.all" "$n" --method "$m"
    fi
  done
done
# the same, centred on the live library (`--centre live`)
for m in $LIVE_METHODS; do
  mkdir -p "$WORK/knn/$m+live"
  for n in $names; do
    knn "$WORK/knn/$m+live/$n.ds" "$n" --method "$m" --centre live --kind dataset
    knn "$WORK/knn/$m+live/$n.all" "$n" --method "$m" --centre live
  done
done
printf 'knn queries\t%s\t0\n' "$(awk -v a="$T_KNN" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')" >> "$TIMES"

# 6. Held out by family (the headline): the numpy reference of every design over the same data
# (scripts/quality/heldout.sh; its features are cached in .cache/quality/feat).
timed heldout "$WORK/logs/heldout.log" env TASKDB_SHARED_DATA="$DATA" QUALITY_VENV="$VENV" \
  bash "$HERE/heldout.sh" "$WORK/heldout.md"

# 7. The document (report.py reads everything from $WORK, so it can be rerun alone).
printf 'whole run\t%s\t0\n' "$(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')" >> "$TIMES"
python3 "$HERE/report.py" --work "$WORK" --previous "$WORK.prev" --families "$HERE/families.json" \
  --out "$OUT_DOC" --methods "$METHODS $(for m in $LIVE_METHODS; do printf '%s+live ' "$m"; done)" \
  --k "$K" --data "$DATA" --heldout "$WORK/heldout.md"
log "wrote $OUT_DOC ($(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')s in all)"
