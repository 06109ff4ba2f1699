#!/usr/bin/env bash
# Builds taskdb's built-in reference library, src/data/reference-library-scatter.json: the
# scatter embeddings of the 17 public datasets of the shared data dir (scripts/quality/
# families.json), computed by taskdb itself with the default surrogate, probe set and
# parameters. The mean of these embeddings centres every new default scatter space (see
# src/reflib.rs and docs/METHODS.md). Rerun after changing the surrogate, the default probe
# set or scatter's parameters (a library that no longer matches is simply not used).
#
# Since issue 8 the default scatter space is centred by its own k-means reference, and the
# built-in library only centres library-centred spaces (`MethodParams::library_centred()`:
# joint pair encoding). This script ingests with today's defaults (pairs as |h(a) - h(b)|), so
# what it writes is a library for `--reference-library` use in today's design, NOT a drop-in
# replacement for the built-in file (tests/reference_library_builtin.rs would fail on it).
#
#   scripts/build_reference_library.sh        # TASKDB_SHARED_DATA=/path/to/shared/data to override
#
# Work files: .cache/reflib/ (a scratch database and its feature cache; a feature cache of the
# quality run, .cache/quality/quality.taskdb.features, is copied in first when present: features
# are keyed by surrogate fingerprint and text hash, so reuse is exact).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DATA="${TASKDB_SHARED_DATA:-$ROOT/../shared/data}"
OUT="${REFLIB_OUT:-src/data/reference-library-scatter.json}"
NAME="${REFLIB_NAME:-taskdb-default-scatter-v1}"
WORK=.cache/reflib
DB="$WORK/reflib.taskdb"

bash scripts/provision.sh >&2
cargo build --release --locked --bin taskdb >&2
TASKDB=target/release/taskdb
mkdir -p "$WORK"
rm -rf "$DB" "$DB.index"
if [ ! -e "$DB.features" ] && [ -e .cache/quality/quality.taskdb.features ]; then
  cp .cache/quality/quality.taskdb.features "$DB.features"
fi
python3 -c 'import json,sys
for n,v in json.load(open(sys.argv[1]))["datasets"].items(): print(n, v["file"], sep="\t")' \
  scripts/quality/families.json |
while IFS=$'\t' read -r name file; do
  echo "ingest $name" >&2
  "$TASKDB" --db "$DB" --quiet ingest dataset "$name" "$DATA/$file" --method scatter --no-reference-library >/dev/null
done
"$TASKDB" --db "$DB" reference-library export "$OUT" --method scatter --kind dataset --name "$NAME"
"$TASKDB" reference-library info "$OUT"
