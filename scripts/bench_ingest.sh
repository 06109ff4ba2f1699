#!/usr/bin/env bash
# Runs the ingestion benchmark (benches/ingest.rs) with the real default surrogate and records
# the machine's load before and after. Needs `bash scripts/provision.sh` and ../shared/data.
# Usage: scripts/bench_ingest.sh [dataset|refs|model|knn]...   (default: all four)
# Environment: see the header of benches/ingest.rs (TASKDB_BENCH_RUNS, TASKDB_BENCH_KNN_N, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== $(date -u +%FT%TZ) $(nproc) cores; uptime: $(uptime)"
cargo bench -p taskdb --bench ingest -- "$@"
echo "== $(date -u +%FT%TZ) uptime: $(uptime)"
