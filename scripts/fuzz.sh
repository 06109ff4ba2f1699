#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60), one after another.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Stable rustc, no nightly: builds with the SanitizerCoverage flags that cargo-fuzz
# passes with `--sanitizer none` and links libFuzzer through libfuzzer-sys. Corpora live
# in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET and fixtures/), crashes in
# fuzz/artifacts/TARGET. A crash makes the script exit 1 after the remaining targets ran;
# turn each crash into a regression test (see docs/RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(dataset predictions probe prompt import open snapshot)
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz does).
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$TRIPLE"
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds+=("seeds/$t")
  # `open` mutates whole database files (its seeds are ~100 KB); the parsers take text.
  MAXLEN=65536
  [ "$t" = open ] && MAXLEN=262144
  [ "$t" = snapshot ] && MAXLEN=131072
  echo "== $t: ${SECS}s"
  if ! ./target/"$TRIPLE"/release/"$t" "corpus/$t" "${seeds[@]}" -max_total_time="$SECS" \
      -max_len=$MAXLEN -rss_limit_mb=${FUZZ_RSS_MB:-2048} -timeout=10 -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" 2>&1 | tee "artifacts/$t.log" | grep -E '^(#[0-9]+ *DONE|stat::|==|SUMMARY|Done)' ; then
    :
  fi
  if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "!! $t: crashes in fuzz/artifacts/$t"; status=1
  fi
done
exit $status
