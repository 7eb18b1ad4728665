#!/usr/bin/env bash
# Instructions per HTTP request in the server process, counted by callgrind:
# `lacre serve` (and the bare axum bound, `examples/upper_bound.rs`) under
# valgrind, loaded by `lacre bench` (batch_sum, 8 connections). The
# difference between a run of 3000 requests and one of 1000 removes start-up
# and shutdown. Kernel time (the loopback TCP stack, about as much again on
# this machine) is not counted, and SHA-256 runs without the CPU's SHA
# instructions under valgrind, so HMAC weighs more here than on the
# hardware. Repeatable within a few hundred instructions (how the load's
# requests batch into wake-ups varies a little: seen 82 644 and 82 791 for
# one lacre build, 17 878 and 18 297 for the bound): the way to compare two
# builds of the HTTP path on a noisy machine, for changes larger than that.
#
#   bash bench/http_instructions.sh                      # bound, memory, SQLite
#   bash bench/http_instructions.sh memory A/lacre B/lacre   # two builds
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/lacre-target}"
command -v valgrind >/dev/null 2>&1 || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --release -q -p lacre-cli
cargo build --release -q -p lacre-server --example upper_bound
T="$CARGO_TARGET_DIR/release"
source bench/lib.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
write_secrets "$work"
PORT=18931

# count STORE BIN N: total instructions of one server run serving N requests.
count() {
  local store="$1" bin="$2" n="$3" pid extra=()
  if [ "$bin" = upper_bound ]; then
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$T/examples/upper_bound" "$PORT" \
      > /dev/null 2> "$work/server.log" & pid=$!
  else
    if [ "$store" = memory ]; then config memory; else config "sqlite://$work/d$n.db"; fi > "$work/c.toml"
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" serve --config "$work/c.toml" \
      --listen "127.0.0.1:$PORT" > /dev/null 2> "$work/server.log" & pid=$!
    extra=(--server-secret-file "$work/s.secret")
  fi
  for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.2; done
  "$T/lacre" bench --url "http://127.0.0.1:$PORT/mcp" --secret-file "$work/c.secret" "${extra[@]}" \
    -n "$n" -c 8 --json > "$work/r.json"
  python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = (r["transport_errors"], r["not_ok"], r["bad_signatures"])
if bad != (0, 0, 0):
    sys.exit(f"the load saw errors (transport, not ok, bad signatures): {bad}")
PY
  # lacre stops on SIGINT (and callgrind writes its counts at exit); the
  # bound has no handler and ends on SIGTERM, which callgrind also survives.
  if [ "$bin" = upper_bound ]; then kill -TERM "$pid"; else kill -INT "$pid"; fi
  wait "$pid" 2>/dev/null || true
  awk '/^(summary|totals):/ {print $2; exit}' "$work/cg.out"
}

per_request() { # STORE BIN
  local short long
  short="$(count "$1" "$2" 1000)"
  long="$(count "$1" "$2" 3000)"
  echo $(( (long - short) / 2000 ))
}

if [ $# -ge 2 ]; then
  store="$1"; shift
  for bin in "$@"; do echo "$bin ($store): $(per_request "$store" "$bin") instructions a request"; done
else
  echo "upper_bound: $(per_request memory upper_bound) instructions a request"
  echo "lacre, memory store: $(per_request memory "$T/lacre") instructions a request"
  echo "lacre, SQLite (the default): $(per_request sqlite "$T/lacre") instructions a request"
fi
