#!/usr/bin/env bash
# Rebuilds fixtures/engine/format1.taskdb and format1.knn.json (tests/format_compat.rs) with a
# taskdb binary that writes format 1 (text keys and values as redb `&str`: taskdb before issue
# 10's format 2, e.g. commit f2fd703). Usage: scripts/make_format1_fixture.sh PATH/TO/OLD/taskdb
set -euo pipefail
bin=${1:?usage: $0 PATH/TO/FORMAT1/taskdb}
cd "$(dirname "$0")/.."
out=fixtures/engine/format1.taskdb
rm -rf "$out" "$out.index"
"$bin" --db "$out" import fixtures/engine/sample.jsonl
"$bin" --db "$out" import fixtures/engine/format1-more.jsonl
"$bin" --db "$out" rm yelp
[[ $("$bin" --db "$out" stats) == *"format:     1"* ]]
{
  printf '{"sst2": '
  "$bin" --db "$out" knn sst2 -k 20 --json
  printf ', "alpha": '
  "$bin" --db "$out" knn alpha -k 5 --json
  printf '}\n'
} > fixtures/engine/format1.knn.json
rm -rf "$out.index"
