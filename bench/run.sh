#!/usr/bin/env bash
# The hot-path benchmark (issue 10): one command from a fresh checkout.
#
#   bench/run.sh [duration_s (1..30, default 10)] ["cases", default: all]
#   cases: sink c1 c16 c64 ingest pg history     (e.g. bench/run.sh 10 "c1 c16")
#
# Builds the release binary, starts the peer kit's sink and sealflow on a fresh data dir (and, for
# `pg`, on a fresh PostgreSQL database on 127.0.0.1:5432), creates the workload (a webhook-triggered
# workflow whose one webhook step POSTs to the sink with `Authorization: Bearer {{secrets.TOKEN}}`
# and `{"id": "{{input.id}}", "via": "sealflow"}`), drives it with wrk and the kit's post.lua, and
# prints one line per case. Loopback only; every load run is bounded by its duration; it stops
# only the processes it started (their PIDs), and drops only the database it created.
#
# Environment: PEER_KIT (default ../shared/peers/n8n next to the repo), PG_URL (default
# postgres://postgres@127.0.0.1:5432/postgres), WORKERS (sealflow workers, default 64),
# WRK_THREADS (default 2), SEALFLOW_BIN (a built binary to measure instead of building this
# checkout, e.g. an older commit's for a before/after in one sitting), KEEP=1 keeps the work dir,
# PERF_RECORD=1 records a CPU profile of the server during each load case (`perf record -g`, kept
# as perf.<case>.data in the kept work dir).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DUR=${1:-10}
CASES=${2:-"sink c1 c16 c64 ingest pg history"}
[ "$DUR" -ge 1 ] && [ "$DUR" -le 30 ] || { echo "duration must be 1..30 s" >&2; exit 1; }
PEER_KIT=${PEER_KIT:-$REPO/../shared/peers/n8n}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
WORKERS=${WORKERS:-64}
WRK_THREADS=${WRK_THREADS:-2}
[ -f "$PEER_KIT/sink.py" ] && [ -f "$PEER_KIT/post.lua" ] || { echo "peer kit not found at $PEER_KIT (set PEER_KIT)" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
fi

if [ -n "${SEALFLOW_BIN:-}" ]; then
  BIN=$SEALFLOW_BIN
else
  cargo build --release -q -p sealflow --manifest-path "$REPO/Cargo.toml"
  BIN=$REPO/target/release/sealflow
fi
WORK=$(mktemp -d -t sealflow-bench.XXXXXX)
PIDS=()
PG_DB=""
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$PG_DB" ]; then psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
  [ "${KEEP:-0}" = 1 ] && echo "work dir kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["data"]["value"].split(" ",1)[1])' "$PEER_KIT/credentials.json")
MASTER_KEY=$("$BIN" key generate | tail -n 1)
export SEALFLOW_MASTER_KEY=$MASTER_KEY SEALFLOW_EGRESS_ALLOW=127.0.0.1/32 SEALFLOW_LOG=warn \
       SEALFLOW_HOOK_RATE_LIMIT=1000000000 SEALFLOW_RUN_RATE_LIMIT=1000000000 SEALFLOW_WORKERS=$WORKERS

SINK_PORT=$(free_port)
python3 "$PEER_KIT/sink.py" "$SINK_PORT" > "$WORK/sink.log" 2>&1 &
PIDS+=($!)
SINK=http://127.0.0.1:$SINK_PORT
for _ in $(seq 1 50); do curl -fsS -o /dev/null "$SINK/stats" 2>/dev/null && break; sleep 0.1; done

SF_PID=""; SF=""; KEY=""; HOOK=""
# start_sealflow <data dir> [database url]: starts a server, sets SF_PID, SF, KEY, HOOK.
start_sealflow() {
  local dir=$1 url=${2:-}
  mkdir -p "$dir"
  local db_args=(--data-dir "$dir")
  [ -n "$url" ] && db_args+=(--database-url "$url")
  KEY=$("$BIN" apikey create "${db_args[@]}" --workspace bench --role admin | tail -n 1)
  local port; port=$(free_port)
  "$BIN" serve "${db_args[@]}" --listen "127.0.0.1:$port" > "$dir/server.log" 2>&1 &
  SF_PID=$!; PIDS+=("$SF_PID"); SF=http://127.0.0.1:$port
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$SF/readyz" 2>/dev/null && break; sleep 0.1; done
  api() { curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"; }
  api -X POST "$SF/api/workflows/secrets" -d "{\"name\":\"TOKEN\",\"value\":\"$TOKEN\"}" >/dev/null
  local wf
  wf=$(api -X POST "$SF/api/workflows" -d "{\"name\":\"bench\",\"status\":\"active\",
    \"trigger\":{\"type\":\"webhook\"},
    \"steps\":[{\"id\":\"post\",\"type\":\"webhook\",\"config\":{\"url\":\"$SINK/sink\",\"method\":\"POST\",
      \"headers\":{\"Authorization\":\"Bearer {{secrets.TOKEN}}\"},
      \"body\":{\"id\":\"{{input.id}}\",\"via\":\"sealflow\"}}}]}")
  HOOK=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["webhook_url"])' "$wf")
  WF_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$wf")
  # smoke: one run end to end
  local smoke; smoke=$(curl -fsS -X POST -H 'Content-Type: application/json' -d '{"id":"smoke"}' "$HOOK?wait=10")
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["status"]=="completed", r' "$smoke" \
    || { echo "smoke run failed: $smoke" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
}
stop_sealflow() { kill "$SF_PID" 2>/dev/null || true; wait "$SF_PID" 2>/dev/null || true; }

sink_stats() { curl -fsS "$SINK/stats"; }
# completed runs (sqlite file or postgres url)
db_completed() {
  if [[ $1 == postgres* ]]; then psql -tAq "$1" -c "SELECT COUNT(*) FROM runs WHERE status='completed'"
  else python3 -c 'import sqlite3,sys; c=sqlite3.connect(f"file:{sys.argv[1]}?mode=ro",uri=True,timeout=30); print(c.execute("select count(*) from runs where status=\"completed\"").fetchone()[0])' "$1"; fi
}
db_unfinished() {
  if [[ $1 == postgres* ]]; then psql -tAq "$1" -c "SELECT COUNT(*) FROM runs WHERE status IN ('queued','running')"
  else python3 -c 'import sqlite3,sys; c=sqlite3.connect(f"file:{sys.argv[1]}?mode=ro",uri=True,timeout=30); print(c.execute("select count(*) from runs where status in (\"queued\",\"running\")").fetchone()[0])' "$1"; fi
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# group commits so far (the writer's batch-size histogram count on /metrics)
commits() { curl -fsS "$SF/metrics" | awk '/^sealflow_db_commit_batch_size_count/ {print $2}'; }
# PostgreSQL transactions so far (each read outside a transaction is one too): "n/a" on SQLite
pg_xacts() {
  if [[ $1 == postgres* ]]; then psql -tAq "$1" -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
  else echo n/a; fi
}
peak_rss_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }

# run_case <name> <concurrency> <url> <db> [lua]: one wrk run against a server, one line out.
run_case() {
  local name=$1 c=$2 url=$3 db=$4 lua=${5:-$PEER_KIT/post.lua}
  local t=$(( WRK_THREADS < c ? WRK_THREADS : c ))
  local s0 d0 cpu0 out fsyncs="n/a"
  s0=$(sink_stats); d0=$(db_completed "$db"); cpu0=$(cpu_ticks "$SF_PID")
  local k0 x0; k0=$(commits); x0=$(pg_xacts "$db")
  perf stat -x, -e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync' -p "$SF_PID" \
    -o "$WORK/perf.$name" -- sleep "$DUR" >/dev/null 2>&1 &
  local perf_pid=$! rec_pid=""
  if [ "${PERF_RECORD:-0}" = 1 ]; then
    perf record -F 499 --call-graph dwarf,16384 -p "$SF_PID" -o "$WORK/perf.$name.data" -- sleep "$DUR" \
      >/dev/null 2>&1 &
    rec_pid=$!
  fi
  out=$(wrk -t"$t" -c"$c" -d"${DUR}s" --timeout 10s -s "$lua" "$url")
  local cpu1; cpu1=$(cpu_ticks "$SF_PID")
  wait "$perf_pid" 2>/dev/null || true
  [ -n "$rec_pid" ] && { wait "$rec_pid" 2>/dev/null || true; }
  # runs still in flight when wrk stopped finish within a moment
  for _ in $(seq 1 100); do [ "$(db_unfinished "$db")" = 0 ] && break; sleep 0.1; done
  local s1 d1 k1 x1; s1=$(sink_stats); d1=$(db_completed "$db"); k1=$(commits); x1=$(pg_xacts "$db")
  [ -s "$WORK/perf.$name" ] && fsyncs=$(awk -F, '$1 ~ /^[0-9]+$/ {s+=$1} END {print s+0}' "$WORK/perf.$name")
  python3 "$REPO/bench/report.py" "$name" "$c" "$DUR" "$out" "$s0" "$s1" "$d0" "$d1" "$cpu0" "$cpu1" \
    "$(getconf CLK_TCK)" "$(peak_rss_kb "$SF_PID")" "$fsyncs" "$k0" "$k1" "$x0" "$x1"
}

SQLITE_DIR=$WORK/sqlite
SQLITE_DB=$SQLITE_DIR/sealflow.db
for case in $CASES; do
  case $case in
    sink)
      out=$(wrk -t"$WRK_THREADS" -c16 -d"${DUR}s" --timeout 10s -s "$PEER_KIT/post.lua" "$SINK/sink")
      python3 "$REPO/bench/report.py" --sink "$DUR" "$out" ;;
    c1|c16|c64)
      [ -n "$SF" ] || start_sealflow "$SQLITE_DIR"
      run_case "sqlite-wait-$case" "${case#c}" "$HOOK?wait=10" "$SQLITE_DB" ;;
    ingest)
      [ -n "$SF" ] || start_sealflow "$SQLITE_DIR"
      run_case "sqlite-ingest-c16" 16 "$HOOK" "$SQLITE_DB" ;;
    history)
      [ -n "$SF" ] || start_sealflow "$SQLITE_DIR"
      python3 "$REPO/bench/history.py" "$SF" "$KEY" "$WF_ID" "$SQLITE_DB" "$DUR"
      run_case "sqlite-wait-c16-with-1M-past-runs" 16 "$HOOK?wait=10" "$SQLITE_DB" ;;
    pg)
      PG_DB=sf_bench_$(python3 -c 'import secrets; print(secrets.token_hex(6))')
      psql -q "$PG_URL" -c "CREATE DATABASE $PG_DB" >/dev/null
      pg_url=${PG_URL%/*}/$PG_DB
      # The SQLite server (if any) stays up for later cases: put its handles back afterwards.
      prev=("$SF_PID" "$SF" "$KEY" "$HOOK" "${WF_ID:-}")
      start_sealflow "$WORK/pg" "$pg_url"
      run_case "postgres-wait-c16" 16 "$HOOK?wait=10" "$pg_url"
      stop_sealflow; SF_PID=${prev[0]}; SF=${prev[1]}; KEY=${prev[2]}; HOOK=${prev[3]}; WF_ID=${prev[4]} ;;
    *) echo "unknown case $case" >&2; exit 1 ;;
  esac
done
