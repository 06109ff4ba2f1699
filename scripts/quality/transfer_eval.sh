#!/usr/bin/env bash
# Transfer-source recommendation measured through the real CLI (issue 11's evidence): the six
# TaskWeb tasks of ../shared/data/transfer/taskweb_visible.csv ingested with the default
# surrogate, then `taskdb eval recommend` (leave-one-target-out) on that file, with and without
# the pivot evidence, beside similarity alone per method and the exact random expectation.
#
#   scripts/quality/transfer_eval.sh [TASKDB_BIN]      (default: target/release/taskdb)
#
# Environment: TASKDB_SHARED_DATA (default ../shared/data); TRANSFER_WORK (default
# .cache/quality/transfer). Takes ~5 minutes on 2 cores cold (five of the six are pair tasks:
# both sides encoded alone for scatter plus the joint pair), seconds warm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DATA="${TASKDB_SHARED_DATA:-../shared/data}"
W="${TRANSFER_WORK:-.cache/quality/transfer}"
T="${1:-target/release/taskdb}"
CSV="$DATA/transfer/taskweb_visible.csv"
[ -f "$CSV" ] || { echo "transfer_eval.sh: $CSV not found (set TASKDB_SHARED_DATA)" >&2; exit 2; }
mkdir -p "$W"
DB="$W/taskweb.taskdb"
declare -A FILE=(
  [mrpc]=paraphrase/mrpc.jsonl [mr_rotten_tomatoes]=sentiment/mr_rotten_tomatoes.jsonl
  [rte]=nli/rte.jsonl [scitail]=nli/scitail.jsonl [snli]=nli/snli.jsonl
  [stsb]=similarity/stsb.jsonl
)
for n in "${!FILE[@]}"; do
  if ! "$T" --db "$DB" show "$n" >/dev/null 2>&1; then
    echo "== ingest $n"
    "$T" -q --db "$DB" ingest dataset "$n" "$DATA/datasets/${FILE[$n]}" \
      --method scatter --method fisher --method textemb
  fi
done
for lambda in 0.75 0.25 0.5 1; do
  echo "== eval recommend, lambda $lambda"
  "$T" --db "$DB" eval recommend --outcomes "$CSV" --value-column combined_score -k 3 --lambda "$lambda"
done
