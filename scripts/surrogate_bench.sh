#!/usr/bin/env bash
# Interleaved side-by-side benchmark: taskdb's surrogate pipeline (Rust bench binary) and the
# Python onnxruntime + tokenizers baseline, same 2,000 sentences, model, batch and threads,
# alternating one run of each so that load from other processes hits both alike.
# Usage: scripts/surrogate_bench.sh [ROUNDS=5] [N=2000] [PYTHON=python3]  → JSON lines on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"; N="${2:-2000}"; PY="${3:-python3}"
cargo bench -p taskdb-surrogate --bench surrogate_throughput --no-run >&2
BIN="$(ls -t target/release/deps/surrogate_throughput-* | grep -v '\.d$' | head -n1)"
for r in $(seq "$ROUNDS"); do
  for t in 1 2; do
    "$BIN" --threads "$t" --runs 1 --n "$N" | grep '^{'
    "$PY" scripts/bench_python_surrogate.py --impl ort --threads "$t" --runs 1 --n "$N" | grep '^{'
  done
done
