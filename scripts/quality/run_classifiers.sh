#!/usr/bin/env bash
# Label the probe pool U with every wrapper in classifiers/ (taskdb's --command protocol).
# Usage: scripts/quality/run_classifiers.sh [PROBE_JSONL] [OUT_DIR]   (python = classifier venv)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PROBE="${1:-$HERE/../../../shared/data/probe_pool.jsonl}"
OUT="${2:-$HERE/../../.cache/quality/clf}"
PY="$(command -v "${PYTHON:-python3}")"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
"$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(json.dumps({"id":r["id"],"text":r["text"]}))' "$PROBE" > "$OUT/probe_in.jsonl"
for f in "$HERE"/classifiers/[a-z]*.py; do
  n="$(basename "$f" .py)"
  [ -s "$OUT/$n.jsonl" ] && continue
  t0=$(date +%s)
  if ! (cd "$HERE/classifiers" && "$PY" "$f" < "$OUT/probe_in.jsonl" > "$OUT/$n.jsonl.tmp"); then
    echo "$n: FAILED" >&2; continue
  fi
  mv "$OUT/$n.jsonl.tmp" "$OUT/$n.jsonl"
  echo "$n: $(wc -l < "$OUT/$n.jsonl") lines, $(( $(date +%s) - t0 ))s"
done
