#!/usr/bin/env bash
# Same answers before and after a change (issue 9's evidence): two taskdb binaries, OLD and NEW.
#
#   scripts/compare_answers.sh OLD_BIN NEW_BIN [WORKDIR]
#
# 1. The demo's work (scripts/demo.sh: three datasets and two models of examples/quickstart,
#    real default surrogate) is done by OLD into one database and by NEW into another; the
#    outputs of `list --json` (less timestamps and ids), of knn for every entry and method, and
#    of `check` must be identical (scores to the last digit).
# 2. NEW answers knn over OLD's database (a database built before the change), for every entry
#    and method, identically to OLD.
# 3. An import of 300 seeded vectors (the external-space path) by each, and knn over it.
# Prints "identical" per step, or the diff and exits 1. Needs scripts/provision.sh.
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2")
W=${3:-$(mktemp -d)}
mkdir -p "$W"
cd "$(dirname "$0")/.."
Q=examples/quickstart
build() { # BIN DB
  local T=$1 DB=$2
  rm -rf "$DB" "$DB".index
  $T -q --db "$DB" ingest dataset yelp_reviews "$Q/datasets/yelp_reviews.jsonl" >/dev/null
  $T -q --db "$DB" ingest dataset sms_spam "$Q/datasets/sms_spam.csv" --text message --label category >/dev/null
  $T -q --db "$DB" ingest dataset scitail "$Q/datasets/scitail.tsv" --text premise --pair hypothesis >/dev/null
  $T -q --db "$DB" ingest model lexicon_sentiment --command "python3 $Q/models/lexicon_sentiment.py" >/dev/null
  $T -q --db "$DB" ingest model spam_keywords --command "python3 $Q/models/spam_keywords.py" >/dev/null
}
answers() { # BIN DB OUT
  local T=$1 DB=$2 OUT=$3
  : > "$OUT"
  for n in yelp_reviews sms_spam scitail lexicon_sentiment spam_keywords; do
    for m in scatter fisher tuned textemb; do
      echo "== knn $n --method $m" >> "$OUT"
      $T --db "$DB" knn "$n" -k 10 --method "$m" --json >> "$OUT" 2>&1 || echo "exit $?" >> "$OUT"
    done
  done
  $T --db "$DB" list --json | python3 -c '
import json,sys
for e in json.load(sys.stdin):
    for k in ("created_at_ms","created","id"): e.pop(k, None)
    print(json.dumps(e, sort_keys=True))' >> "$OUT"
  $T --db "$DB" check >> "$OUT" 2>&1
}
same() { # WHAT A B
  if cmp -s "$2" "$3"; then echo "$1: identical ($(wc -l < "$2") lines)"; else echo "$1: DIFFERENT"; diff "$2" "$3" | head -40; exit 1; fi
}
# The feature cache is shared so that the second build encodes nothing (it is derived and
# verified; it does not change answers).
build "$OLD" "$W/old.taskdb"
cp "$W/old.taskdb.features" "$W/new.taskdb.features"
build "$NEW" "$W/new.taskdb"
answers "$OLD" "$W/old.taskdb" "$W/old.txt"
answers "$NEW" "$W/new.taskdb" "$W/new.txt"
same "demo work, each binary on its own database" "$W/old.txt" "$W/new.txt"
answers "$NEW" "$W/old.taskdb" "$W/new-on-old.txt"
same "NEW over OLD's database" "$W/old.txt" "$W/new-on-old.txt"
python3 - "$W/vec.jsonl" <<'PY'
import json, random, sys
r = random.Random(7)
with open(sys.argv[1], "w") as f:
    for i in range(300):
        f.write(json.dumps({"name": f"v{i}", "kind": "model" if i % 3 else "dataset",
                            "space": "ext", "vector": [r.gauss(0, 1) for _ in range(64)]}) + "\n")
PY
for b in old new; do
  T=$OLD; [ $b = new ] && T=$NEW
  rm -rf "$W/imp-$b.taskdb" "$W/imp-$b.taskdb.index"
  $T -q --db "$W/imp-$b.taskdb" import "$W/vec.jsonl" >/dev/null
  for n in v0 v1 v17 v299; do $T --db "$W/imp-$b.taskdb" knn $n -k 20 --json; done > "$W/imp-$b.txt"
done
same "import and knn in an external space" "$W/imp-old.txt" "$W/imp-new.txt"
