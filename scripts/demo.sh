#!/usr/bin/env bash
# The README's first command: taskdb's main job on the bundled example, with the real
# default surrogate (all-MiniLM-L6-v2 through ONNX Runtime on CPU).
#
# On a fresh machine it provisions ONNX Runtime and the surrogate (scripts/provision.sh),
# builds taskdb, ingests three example datasets and two black-box models into a fresh
# database, and asks k-nearest-task questions across kinds.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision.sh
cargo build --release --locked --bin taskdb
TASKDB=target/release/taskdb
Q=examples/quickstart

DB=${DEMO_DB:-target/demo.taskdb}
# A fresh database each run. Its feature cache ($DB.features: surrogate features of U and of
# the example rows, derived and verified) is kept, so a second run skips the encoding.
rm -rf "$DB" "$DB".index
echo
echo "== ingesting datasets into $DB"
$TASKDB --db "$DB" ingest dataset yelp_reviews "$Q/datasets/yelp_reviews.jsonl"
$TASKDB --db "$DB" ingest dataset sms_spam "$Q/datasets/sms_spam.csv" --text message --label category
$TASKDB --db "$DB" ingest dataset scitail "$Q/datasets/scitail.tsv" --text premise --pair hypothesis

echo
echo "== ingesting black-box models (they label the probe set U over a JSON-lines pipe)"
$TASKDB --db "$DB" ingest model lexicon_sentiment --command "python3 $Q/models/lexicon_sentiment.py"
$TASKDB --db "$DB" ingest model spam_keywords --command "python3 $Q/models/spam_keywords.py"

echo
echo "== what is stored"
$TASKDB --db "$DB" list

echo
echo "== which dataset is the task the sentiment model performs? (models and datasets in one space)"
$TASKDB --db "$DB" knn lexicon_sentiment -k 3 --kind dataset
echo
echo "== which stored task is nearest the SMS spam dataset?"
$TASKDB --db "$DB" knn sms_spam -k 4
echo
echo "== which dataset to train on before the SMS spam task? (each answer with its evidence)"
$TASKDB --db "$DB" recommend sms_spam -k 2
echo
echo "== the sentiment model and the Yelp reviews side by side"
$TASKDB --db "$DB" compare lexicon_sentiment yelp_reviews
echo
echo "== the same answer as JSON, for scripts"
$TASKDB --db "$DB" knn spam_keywords -k 2 --json
echo
$TASKDB --db "$DB" check
