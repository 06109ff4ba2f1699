#!/usr/bin/env bash
# Builds the Python package (crates/taskdb-python, PyO3 + maturin) into a virtual environment
# and runs its tests. Called by scripts/test.sh (the README's test command); also runnable
# alone. The venv lives in $TASKDB_HOME/pyvenv (default ~/.cache/taskdb/pyvenv) and is reused;
# its packages are pinned to the versions these tests were verified with. The extension is
# built in the dev profile into the root's target/ directory, so it reuses what `cargo test`
# compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${TASKDB_PYVENV:-${TASKDB_HOME:-$HOME/.cache/taskdb}/pyvenv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  if ! "$PY" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "error: '$PY -m venv' failed: the Python tests need Python 3.9+ with venv" \
         "(Debian/Ubuntu: apt install python3-venv); set PYTHON to another interpreter" >&2
    exit 1
  fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  maturin==1.16.0 numpy==2.4.6 pandas==3.1.1 pyarrow==26.0.1 pytest==9.2.0 tqdm==4.70.1
VIRTUAL_ENV="$VENV" CARGO_TARGET_DIR="$PWD/target" \
  "$VENV/bin/maturin" develop --locked -q -m crates/taskdb-python/Cargo.toml
"$VENV/bin/python" -m pytest -q crates/taskdb-python/tests "$@"
