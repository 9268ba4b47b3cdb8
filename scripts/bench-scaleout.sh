#!/usr/bin/env bash
# Driver → subscriber latency across two instances: instances A and B on one PostgreSQL database
# and one Redis; the load generator's drivers stream to A, its dashboards and trackers are spread
# over A and B, and the report gives the latency at each (A: the in-process path, B: through
# Redis) from the same run.
#
# Usage: scripts/bench-scaleout.sh
# Environment: PG_SERVER (default postgres://postgres@127.0.0.1:5432/test: a database of its own,
# dropped at the end), REDIS_URL (redis://127.0.0.1:6379; keys under a prefix of its own, deleted
# at the end), DRIVERS (2000), FIX_INTERVAL_MS (1000: DRIVERS × 1000 / FIX_INTERVAL_MS fixes/s),
# TRACKERS (1000), DASHBOARDS (20), VENDORS (20), DURATION (30s), PORT_A (18021), PORT_B (18022).
# Needs psql, curl, redis-cli. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
DRIVERS=${DRIVERS:-2000}
FIX_INTERVAL_MS=${FIX_INTERVAL_MS:-1000}
TRACKERS=${TRACKERS:-1000}
DASHBOARDS=${DASHBOARDS:-20}
VENDORS=${VENDORS:-20}
DURATION=${DURATION:-30s}
PORT_A=${PORT_A:-18021}
PORT_B=${PORT_B:-18022}

cargo build --release --quiet --example server --example loadgen
work=$(mktemp -d)
database=medex_bench_scaleout_$$
prefix=medex-bench-$$
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  psql "$PG_SERVER" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$PG_SERVER" -qc "CREATE DATABASE $database"
vars=(MEDEX_DATABASE_URL="${PG_SERVER%/*}/$database" MEDEX_REDIS_URL="$REDIS_URL"
  MEDEX_REDIS_PREFIX="$prefix" MEDEX_LOG=warn MEDEX_WS_MIN_FIX_INTERVAL_MS=0
  MEDEX_HASH_CONCURRENCY=2 MEDEX_ACCESS_TOKEN_MINUTES=240 MEDEX_REGISTRATIONS_PER_HOUR=100000
  MEDEX_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
  MEDEX_CUSTODY_KEY="$(head -c 32 /dev/urandom | base64 | tr -d '\n')")
for instance in a b; do
  port=$PORT_A; [ "$instance" = b ] && port=$PORT_B
  env "${vars[@]}" MEDEX_ADDR=127.0.0.1:$port MEDEX_DATA_DIR="$work/$instance" \
    target/release/examples/server >"$work/$instance.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/api/health" || { cat "$work/$instance.log"; exit 1; }
  echo
done

echo "== $DRIVERS drivers on A, a fix every $FIX_INTERVAL_MS ms each; $DASHBOARDS dashboards and $TRACKERS trackers over A and B (load average $(cut -d' ' -f1-3 /proc/loadavg))"
target/release/examples/loadgen --target "127.0.0.1:$PORT_A" \
  --subscribers-at "127.0.0.1:$PORT_A,127.0.0.1:$PORT_B" --state "$work/state.json" \
  --vendors "$VENDORS" --drivers "$DRIVERS" --fix-interval-ms "$FIX_INTERVAL_MS" \
  --trackers "$TRACKERS" --dashboards "$DASHBOARDS" --duration "$DURATION" \
  --server-pid "${pids[0]}"
for instance in a b; do
  if grep -qiE "error|panicked" "$work/$instance.log"; then
    echo "-- instance $instance logged:"; grep -iE "error|panicked" "$work/$instance.log" | head -n 5
  fi
done
