#!/usr/bin/env bash
# Rebuilds fixtures/engine/format2.taskdb and format2.knn.json (tests/format_compat.rs) with a
# taskdb binary that writes format 2 (every vector record whole: taskdb before format 3's
# records in parts, e.g. commit bc68dcf). Usage: scripts/make_format2_fixture.sh PATH/TO/OLD/taskdb
# The 768-d vectors of space "wide" are made here (deterministic; records of 3,081 bytes,
# which format 3 stores in four parts).
set -euo pipefail
bin=${1:?usage: $0 PATH/TO/FORMAT2/taskdb}
cd "$(dirname "$0")/.."
out=fixtures/engine/format2.taskdb
wide=$(mktemp)
trap 'rm -f "$wide"' EXIT
python3 - > "$wide" <<'PY'
import json, math
for i in range(24):
    v = [round(math.sin(0.7 * i + 0.013 * j) + 0.3 * math.cos(0.05 * j * (i % 5 + 1)), 4)
         for j in range(768)]
    print(json.dumps({"name": f"wide-{i}", "kind": "dataset", "space": "wide", "vector": v,
                      "tags": {"group": str(i % 3)}}))
PY
rm -rf "$out" "$out.index"
"$bin" --db "$out" import fixtures/engine/sample.jsonl
"$bin" --db "$out" import "$wide"
"$bin" --db "$out" rm wide-3
[[ $("$bin" --db "$out" stats) == *"format:     2"* ]]
{
  printf '{"sst2": '
  "$bin" --db "$out" knn sst2 -k 20 --json
  printf ', "wide-0": '
  "$bin" --db "$out" knn wide-0 -k 10 --json
  printf '}\n'
} > fixtures/engine/format2.knn.json
rm -rf "$out.index"
