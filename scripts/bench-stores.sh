#!/usr/bin/env bash
# The store-bound targets, sled beside PostgreSQL in one run (the stores take turns): durable
# order creations/s through the server (loadgen, --order-rate max) and fixes/s into the trail at
# the store (examples/trail_load.rs, one appender per driver).
#
# Usage: scripts/bench-stores.sh
# Environment: PG_SERVER (default postgres://postgres@127.0.0.1:5432/test: each run gets a database
# of its own there, dropped at the end), CONNECTIONS ("16 64"), ORDER_SECONDS (15), FIX_SECONDS
# (60, at most 60), DRIVERS (4000), PORT (18010). Needs psql, curl. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432/test}
CONNECTIONS=${CONNECTIONS:-16 64}
ORDER_SECONDS=${ORDER_SECONDS:-15}
FIX_SECONDS=${FIX_SECONDS:-60}
DRIVERS=${DRIVERS:-4000}
PORT=${PORT:-18010}

cargo build --release --quiet --example server --example loadgen --example trail_load
work=$(mktemp -d)
databases=()
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  for db in "${databases[@]}"; do
    psql "$PG_SERVER" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# A fresh database on the server; its URL.
database() {
  local name=medex_bench_$1_$$
  psql "$PG_SERVER" -qc "CREATE DATABASE $name"
  databases+=("$name")
  DATABASE_URL="${PG_SERVER%/*}/$name"
}

SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
CUSTODY_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
start() { # store run
  local store=$1 run=$2
  local vars=(MEDEX_ADDR=127.0.0.1:$PORT MEDEX_DATA_DIR="$work/$run" MEDEX_LOG=warn
    MEDEX_JWT_SECRET="$SECRET" MEDEX_CUSTODY_KEY="$CUSTODY_KEY" MEDEX_REGISTRATIONS_PER_HOUR=100000)
  if [ "$store" = postgres ]; then
    database "$run"
    vars+=(MEDEX_DATABASE_URL="$DATABASE_URL")
  fi
  env "${vars[@]}" target/release/examples/server >"$work/$run.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null && return; sleep 0.1; done
  cat "$work/$run.log"; exit 1
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }

echo "== durable order creation (${ORDER_SECONDS}s each; load average $(cut -d' ' -f1-3 /proc/loadavg))"
for connections in $CONNECTIONS; do
  for store in sled postgres; do
    run=orders_${store}_$connections
    start "$store" "$run"
    target/release/examples/loadgen --target "127.0.0.1:$PORT" --state "$work/$run.json" \
      --vendors 4 --drivers 0 --trackers 0 --dashboards 0 --order-rate max --tracking-rate 0 \
      --status-rate 0 --http-connections "$connections" --duration "${ORDER_SECONDS}s" \
      --server-pid "$server_pid" >"$work/$run.out" 2>&1 || { cat "$work/$run.out"; exit 1; }
    echo "-- $store, $connections connections"
    grep -iE "order|error|cpu" "$work/$run.out" | tail -n 6
    stop
  done
done

echo "== fixes into the trail (${FIX_SECONDS}s each, $DRIVERS appenders; load average $(cut -d' ' -f1-3 /proc/loadavg))"
for store in sled postgres; do
  if [ "$store" = postgres ]; then database fixes; export MEDEX_DATABASE_URL=$DATABASE_URL; fi
  target/release/examples/trail_load --store "$store" --drivers "$DRIVERS" --seconds "$FIX_SECONDS" \
    | tail -n 1
done
