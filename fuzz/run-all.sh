#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time:
#
#     fuzz/run-all.sh [SECONDS]      # seconds per target, default 10
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on the stable toolchain.
# The seeds in fuzz/corpus/<target>/ and fuzz/regressions/<target>/ are only read; what the
# fuzzer finds new goes to fuzz/target/corpus/<target>/ (not committed), so later runs start
# from it. A failing input is written to fuzz/artifacts/<target>/ and the script stops with a
# non-zero status: fix the bug, then keep the input in fuzz/regressions/<target>/ (`cargo test`
# replays it).
set -euo pipefail

seconds="${1:-10}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 1
fi
# cargo-fuzz passes libFuzzer's instrumentation flags, which the stable compiler accepts only
# with this switch.
export RUSTC_BOOTSTRAP=1

targets=$(cargo fuzz list)
cargo fuzz build
for target in $targets; do
  mkdir -p "target/corpus/$target"
  seeds=("corpus/$target")
  if [ -d "regressions/$target" ]; then seeds+=("regressions/$target"); fi
  echo "==> $target: ${seconds}s"
  # The targets keep a prepared service between inputs on purpose, which LeakSanitizer would
  # take for leaks and rescan the heap for after every input.
  cargo fuzz run "$target" "target/corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -detect_leaks=0 -print_final_stats=1
done
echo "fuzzing: every target ran ${seconds}s without a failure"
