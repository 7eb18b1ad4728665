#!/usr/bin/env bash
# Builds the fuzz targets and runs each one for a fixed time.
#
#   FUZZ_SECONDS=60 bash fuzz/run.sh [TARGET...]
#
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer) on the stable toolchain:
# no sanitizer (`-s none`; AddressSanitizer needs nightly, and the code under
# test forbids `unsafe`, so panics, failed assertions, overflow checks, hangs
# and runaway memory are what there is to find). Each target starts from a
# copy of its committed seeds (fuzz/corpus/<target>/seed-*) in a temporary
# directory, so a run adds nothing to the repository. Exits non-zero if any
# target crashes; the input is printed as hex and kept under
# fuzz/artifacts/<target>/.
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60); 0 only replays the seeds
#   FUZZ_KEEP_CORPUS a directory to copy each target's final corpus to
#                    (DIR/<target>/), e.g. for the CPython differential in
#                    crates/lacre-proto/tests/it/cpython_property.rs
#   FUZZ_TARGET_DIR  cargo target directory for the instrumented build
#                    (default /root/.cache/lacre-fuzz-target). CARGO_TARGET_DIR
#                    is deliberately not used: .ci/run exports it for the main
#                    build, and instrumented artifacts would evict those.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
target_dir="${FUZZ_TARGET_DIR:-/root/.cache/lacre-fuzz-target}"
cargo_fuzz_version="0.13.2"
max_len=65536
all_targets=(envelope_parse canonical_roundtrip verify_pipeline)
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

echo "== building fuzz targets ($(cargo fuzz --version), $(rustc --version))"
build_start=$(date +%s)
# `cargo fuzz build` takes one target or none (all of them).
build_args=()
[ "${#targets[@]}" -eq 1 ] && build_args=("${targets[0]}")
CARGO_TARGET_DIR="$target_dir" cargo fuzz build -s none "${build_args[@]}"
echo "build: $(( $(date +%s) - build_start )) s"

host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$host/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# libFuzzer reads -max_total_time=0 as "no limit".
if [ "$seconds" -gt 0 ]; then
  run_limit=(-max_total_time="$seconds")
else
  run_limit=(-runs=0)
fi

failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$work/corpus-$t"
  artifacts="$work/artifacts-$t"
  mkdir -p "$corpus" "$artifacts"
  cp fuzz/corpus/"$t"/seed-* "$corpus"/
  seeds=$(find "$corpus" -type f | wc -l)
  log="$work/$t.log"
  echo "== $t: $seeds seeds, ${seconds} s"
  start_ns=$(date +%s%N)
  status=0
  "$bin_dir/$t" "$corpus" \
    "${run_limit[@]}" -max_len="$max_len" -timeout=10 \
    -dict=fuzz/lacre.dict -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
  elapsed="$(( elapsed_ms / 1000 )).$(( elapsed_ms % 1000 / 100 ))"
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -n1 || true)
  printf '%s: %s s, %s executions (%s/s), final %s\n' \
    "$t" "$elapsed" "${execs:-?}" "${per_sec:-?}" "${cov:-coverage unknown}"
  if [ "$status" -ne 0 ] || [ -z "$done_line" ]; then
    failed+=("$t")
    echo "!! $t FAILED (exit $status); the panic and the end of its log:"
    grep -A4 'panicked at' "$log" | head -n 20 || true
    echo "..."
    tail -n 25 "$log"
    mkdir -p fuzz/artifacts/"$t"
    for a in "$artifacts"/*; do
      [ -f "$a" ] || continue
      cp "$a" fuzz/artifacts/"$t"/
      echo "!! input $(basename "$a") ($(wc -c <"$a") bytes), kept as fuzz/artifacts/$t/$(basename "$a"), hex:"
      od -An -v -tx1 "$a" | tr -d ' \n' | head -c 16384
      echo
      [ "$(wc -c <"$a")" -le 8192 ] || echo "!! (hex cut after 8192 bytes)"
    done
  fi
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$t"/
  fi
  summary+=("$(printf '%-20s %7s s %12s execs  %s' "$t" "$elapsed" "${execs:-?}" "${cov:-?}")")
done

echo "== fuzz summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
passed=$(( ${#targets[@]} - ${#failed[@]} ))
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed targets: ${failed[*]}"
fi
echo "fuzz: $passed passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
