#!/usr/bin/env bash
# Side-by-side benchmark, one command: each server pinned to core 0, the load
# generator (`lacre bench`) pinned to core 1, the same load for all.
#
#   bash bench/compare.sh            # N=3000000 requests max, C=32, D=60 s each
#   N=300000 C=64 D=10 bash bench/compare.sh   # a quicker look
#
# Nonces and request ids are random UUIDv4s, as real clients send (a
# store's index then takes them anywhere, not at its end); each server runs
# until D seconds or N requests, whichever comes first, so the durable
# stores reach their steady state. The load generator pre-signs the N
# requests (about 400 bytes each) before the clock starts.
#
# Prints a table and the ratios; raw reports land in $OUT (default bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/lacre-target}"
N="${N:-3000000}"; C="${C:-32}"; D="${D:-60}"
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"

cargo build --release -q -p lacre-cli
cargo build --release -q -p lacre-server --example upper_bound
BIN="$CARGO_TARGET_DIR/release"
python3 -c "import pydantic, aiohttp" 2>/dev/null || python3 -m pip install -q -r testdata/requirements.txt

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
source bench/lib.sh
write_secrets "$work"

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

run() { # $1 = name, $2 = port, $3.. = extra bench flags
  local name="$1" port="$2"; shift 2
  wait_port "$port"
  local pid="${pids[-1]}"
  local idle; idle="$(rss_kb "$pid")"
  taskset -c 1 "$BIN/lacre" bench --url "http://127.0.0.1:$port/mcp" --secret-file "$work/c.secret" \
    -n "$N" -d "$D" -c "$C" --json "$@" > "$OUT/$name.json" &
  local bench=$!
  sleep "$(awk "BEGIN {print $D / 2}")"
  local loaded; loaded="$(rss_kb "$pid")"
  wait "$bench" || true
  python3 - "$OUT/$name.json" "$idle" "$loaded" <<'PY'
import json, sys
p, idle, loaded = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(p)); r["rss_idle_kb"] = idle; r["rss_loaded_kb"] = loaded
json.dump(r, open(p, "w"))
PY
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

echo "== upper bound: axum, fixed reply (no parsing, no crypto)"
taskset -c 0 "$BIN/examples/upper_bound" 18801 > /dev/null & pids+=($!)
run upper_bound 18801

echo "== lacre serve, memory store"
config memory > "$work/mem.toml"
taskset -c 0 "$BIN/lacre" serve --config "$work/mem.toml" --listen 127.0.0.1:18802 2> "$work/mem.log" & pids+=($!)
run lacre_memory 18802 --server-secret-file "$work/s.secret"

echo "== lacre serve, SQLite store (the default)"
config "sqlite://$work/bench.db" > "$work/sqlite.toml"
taskset -c 0 "$BIN/lacre" serve --config "$work/sqlite.toml" --listen 127.0.0.1:18803 2> "$work/sqlite.log" & pids+=($!)
run lacre_sqlite 18803 --server-secret-file "$work/s.secret"

echo "== lacre serve, SQLite store, audit log on"
{ config "sqlite://$work/audit.db"; printf '[audit]\nenabled = true\n'; } > "$work/audit.toml"
taskset -c 0 "$BIN/lacre" serve --config "$work/audit.toml" --listen 127.0.0.1:18805 2> "$work/audit.log" & pids+=($!)
run lacre_sqlite_audit 18805 --server-secret-file "$work/s.secret"

# Jobs (`noop_job`, a long-running tool that completes at once): JOBS calls,
# then each accepted job long-polled until done; jobs/s from the first call
# to the last completion. The client's job limit is raised so none is refused.
JOBS="${JOBS:-5000}"
jobs_config() { config "$1"; echo 'limits = { max_jobs = 1000000 }'; }

echo "== jobs, SQLite store (the default): $JOBS noop_job calls, each waited for"
jobs_config "sqlite://$work/jobs.db" > "$work/jobs-sqlite.toml"
taskset -c 0 "$BIN/lacre" serve --config "$work/jobs-sqlite.toml" --listen 127.0.0.1:18806 --bench-tools 2> "$work/jobs-sqlite.log" & pids+=($!)
N="$JOBS" run jobs_sqlite 18806 --server-secret-file "$work/s.secret" --tool noop_job --args '{"x":1}' --wait-jobs

echo "== jobs, memory store"
jobs_config memory > "$work/jobs-memory.toml"
taskset -c 0 "$BIN/lacre" serve --config "$work/jobs-memory.toml" --listen 127.0.0.1:18807 --bench-tools 2> "$work/jobs-memory.log" & pids+=($!)
N="$JOBS" run jobs_memory 18807 --server-secret-file "$work/s.secret" --tool noop_job --args '{"x":1}' --wait-jobs

# PostgreSQL: three replicas on one database (core 0), each with a load of
# its own (16 connections, core 1), all at once; skipped without a server.
PG="${PG:-postgres://postgres@127.0.0.1:5432/postgres}"
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "== jobs, PostgreSQL, three replicas: $JOBS calls each"
  schema="bench_$$"
  for i in 1 2 3; do
    jobs_config "$PG?schema=$schema" > "$work/jobs-pg$i.toml"
    taskset -c 0 "$BIN/lacre" serve --config "$work/jobs-pg$i.toml" --listen "127.0.0.1:1881$i" --bench-tools 2> "$work/jobs-pg$i.log" & pids+=($!)
    wait_port "1881$i"
  done
  loads=()
  for i in 1 2 3; do
    taskset -c 1 "$BIN/lacre" bench --url "http://127.0.0.1:1881$i/mcp" --secret-file "$work/c.secret" \
      --server-secret-file "$work/s.secret" --tool noop_job --args '{"x":1}' -n "$JOBS" -c 16 --wait-jobs \
      --json > "$OUT/jobs_pg$i.json" & loads+=($!)
  done
  wait "${loads[@]}" || true
  psql -h 127.0.0.1 -U postgres -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
else
  echo "== jobs, PostgreSQL: skipped (nothing accepting connections on 127.0.0.1:5432)"
fi

echo "== the seed's Python server (aiohttp)"
taskset -c 0 python3 interop/seed_server.py --port 18804 --server-id mcp-server-001 \
  --server-secret server_secret_key_123 --client client-001=client_secret_key_456 > /dev/null & pids+=($!)
run seed_python 18804 --server-secret-file "$work/s.secret"

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = ["upper_bound", "lacre_memory", "lacre_sqlite", "lacre_sqlite_audit", "seed_python"]
r = {n: json.load(open(os.path.join(out, n + ".json"))) for n in rows}
print()
print(f"{'server':<15} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} {'not ok':>7} {'sig bad':>8} {'RSS idle':>9} {'RSS load':>9}")
for n in rows:
    x = r[n]
    print(f"{n:<15} {x['rps']:>9.0f} {x['p50_ms']:>8.3f} {x['p90_ms']:>8.3f} {x['p99_ms']:>8.3f} {x['max_ms']:>8.3f} "
          f"{x['transport_errors']:>7} {x['not_ok']:>7} {x['bad_signatures']:>5}/{x['verified']:<4} "
          f"{x['rss_idle_kb']/1024:>7.1f}MB {x['rss_loaded_kb']/1024:>7.1f}MB")
ub, seed = r["upper_bound"]["rps"], r["seed_python"]["rps"]
print()
for n in ["lacre_memory", "lacre_sqlite", "lacre_sqlite_audit"]:
    x = r[n]["rps"]
    print(f"{n}: {x/ub:.2f} x upper bound, {x/seed:.1f} x seed python")
print(f"audit log on: {r['lacre_sqlite_audit']['rps'] / r['lacre_sqlite']['rps']:.2f} x the same server without it")
print()
jobs = {n: json.load(open(os.path.join(out, n + ".json"))) for n in ["jobs_sqlite", "jobs_memory"]}
for i in (1, 2, 3):
    p = os.path.join(out, f"jobs_pg{i}.json")
    if os.path.exists(p):
        jobs[f"jobs_pg{i}"] = json.load(open(p))
print(f"{'jobs':<15} {'jobs/s':>9} {'done':>7} {'calls/s':>9} {'p99 ms':>8} {'not ok':>7} {'sig bad':>8}")
for n, x in jobs.items():
    print(f"{n:<15} {x['jobs_per_s']:>9.0f} {x['jobs_done']:>7} {x['rps']:>9.0f} {x['p99_ms']:>8.3f} {x['not_ok']:>7} "
          f"{x['bad_signatures']:>5}/{x['verified']:<4}")
print(f"jobs, SQLite: {jobs['jobs_sqlite']['jobs_per_s'] / jobs['jobs_memory']['jobs_per_s']:.2f} x the memory store")
pg = [x for n, x in jobs.items() if n.startswith("jobs_pg")]
if pg:
    print(f"jobs, PostgreSQL, {len(pg)} replicas: {sum(x['jobs_per_s'] for x in pg):.0f} jobs/s in all")
PY
