#!/usr/bin/env bash
# Instructions per request, counted by callgrind (stable on a noisy machine):
# verify + dispatch `batch_sum` + sign + serialize, plus the client-side
# signing of the request. The difference between two run lengths removes
# start-up costs. Fails above BOUND, set well above the measured figure so
# that it catches a 2x regression, not noise.
#
#   bash bench/instructions.sh          # prints the figure, checks the bound
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/lacre-target}"
BOUND="${BOUND:-250000}"
if ! command -v valgrind >/dev/null 2>&1; then
  if [ -n "${CI:-}" ]; then echo "valgrind is required in CI" >&2; exit 1; fi
  echo "SKIPPED instruction count: valgrind not installed"; exit 0
fi
cargo build --release -q -p lacre-server --example dispatch_count
bin="$CARGO_TARGET_DIR/release/examples/dispatch_count"
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" 2>&1 | awk '/Collected/ {print $4}'; }
short=$(count 500)
long=$(count 1500)
per=$(( (long - short) / 1000 ))
echo "instructions per request (callgrind): $per (bound $BOUND)"
if [ "$per" -gt "$BOUND" ]; then
  echo "instruction count regression: $per > $BOUND" >&2
  exit 1
fi
