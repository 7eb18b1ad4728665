#!/usr/bin/env bash
# Costs as the store grows: `batch_sum` and `poll_job` (a finished job)
# against the default configuration (SQLite, nonces in the journal), once on
# an empty store and once with JOBS finished jobs in the database and NONCES
# live nonces in the journal. Server pinned to core 0, load to core 1, as in
# bench/compare.sh; prints the figures and the ratios filled / empty.
#
#   bash bench/scaling.sh                        # JOBS=1000000 NONCES=10000000 D=15
#   JOBS=100000 NONCES=1000000 D=5 bash bench/scaling.sh   # a quicker look
#
# The jobs are written straight into the database (rows as the server
# writes them); the nonces are written as journal files of random digests
# under the journal's own key, spread over the next 300 s of expiry buckets:
# to the server they are live nonces like any other (it reads them back at
# start and sweeps them as their buckets end, during the run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/lacre-target}"
JOBS="${JOBS:-1000000}"; NONCES="${NONCES:-10000000}"; D="${D:-15}"; C="${C:-32}"
N="${N:-2000000}"
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
cargo build --release -q -p lacre-cli
BIN="$CARGO_TARGET_DIR/release/lacre"

work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
source bench/lib.sh
write_secrets "$work"

start() { # $1 = config; sets $server
  taskset -c 0 "$BIN" serve --config "$1" --listen 127.0.0.1:18850 2>> "$work/server.log" &
  server=$!
  wait_port 18850
}

stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }

# $1 = directory, $2 = jobs, $3 = nonces: a store made by the server (schema,
# journal key), then filled.
prepare() {
  mkdir -p "$1"
  config "sqlite://$1/lacre.db" > "$1/lacre.toml"
  start "$1/lacre.toml"; stop
  python3 - "$1/lacre.db" "$1/lacre.db-nonces" "$2" "$3" <<'PY'
import hashlib, math, os, sqlite3, sys, time
db, journal, jobs, nonces = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
now = int(time.time() * 1000)
con = sqlite3.connect(db)
rows = ((f"fill-{i:07d}", "client-001", f"fill-request-{i}", "noop_job", '{"x":1}', "done",
         now, now, now, now, '{"x":1}', 7, 1) for i in range(max(jobs, 1)))
con.executemany(
    "INSERT INTO lacre_jobs (id, client_id, request_id, tool, args, state, available_at_ms,"
    " created_ms, updated_ms, finished_ms, result, args_bytes, attempt)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
con.commit()
key = open(os.path.join(journal, "key"), "rb").read()
fingerprint = hashlib.sha256(key + bytes(32) + b"lacre nonce journal key fingerprint").digest()[:8]
buckets = 30
first = math.ceil(now / 10_000) * 10 + 10
per = nonces // buckets
for b in range(buckets if nonces else 0):
    end = first + 10 * b
    with open(os.path.join(journal, f"{end:010}.nonces"), "wb") as f:
        f.write(b"lacrenj1" + fingerprint)
        f.write(os.urandom(12 * per))
PY
}

measure() { # $1 = name, $2 = directory
  start "$2/lacre.toml"
  local rss; rss="$(awk '/VmRSS/ {print $2}' "/proc/$server/status")"
  taskset -c 1 "$BIN" bench --url http://127.0.0.1:18850/mcp --secret-file "$work/c.secret" \
    --server-secret-file "$work/s.secret" -n "$N" -d "$D" -c "$C" --json > "$OUT/scaling_${1}_batch_sum.json"
  taskset -c 1 "$BIN" bench --url http://127.0.0.1:18850/mcp --secret-file "$work/c.secret" \
    --server-secret-file "$work/s.secret" -n "$N" -d "$D" -c "$C" --tool poll_job \
    --args '{"job_id":"fill-0000000"}' --json > "$OUT/scaling_${1}_poll_job.json"
  echo "$rss" > "$OUT/scaling_${1}_rss_kb"
  stop
}

echo "== filling: $JOBS finished jobs, $NONCES live nonces"
prepare "$work/empty" 1 0
prepare "$work/full" "$JOBS" "$NONCES"
du -sh "$work/full/lacre.db" "$work/full/lacre.db-nonces"
echo "== empty store"; measure empty "$work/empty"
echo "== filled store"; measure full "$work/full"

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def r(name, tool):
    return json.load(open(os.path.join(out, f"scaling_{name}_{tool}.json")))
print(f"\n{'store':8} {'tool':10} {'req/s':>8} {'p99 ms':>8} {'errors':>7} {'not ok':>7} {'RSS at start':>13}")
for name in ["empty", "full"]:
    rss = int(open(os.path.join(out, f"scaling_{name}_rss_kb")).read()) / 1024
    for tool in ["batch_sum", "poll_job"]:
        x = r(name, tool)
        print(f"{name:8} {tool:10} {x['rps']:8.0f} {x['p99_ms']:8.3f} {x['transport_errors']:7} {x['not_ok']:7} {rss:11.1f}MB")
for tool in ["batch_sum", "poll_job"]:
    print(f"{tool}: filled store {r('full', tool)['rps'] / r('empty', tool)['rps']:.2f} x the empty one")
PY
