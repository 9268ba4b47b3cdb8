#!/usr/bin/env bash
# Runs the README's commands against a real server: start it, walk one delivery with curl,
# simulate a short day, stop it with SIGTERM (must exit 0), create an admin with the command
# line, print --help. Needs curl and jq. Usage: scripts/smoke.sh (from the repository root).
set -euo pipefail
cargo build --quiet --example server --example simulate
bin=${CARGO_TARGET_DIR:-target}/debug/examples
server=$bin/server
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT

MEDEX_DATA_DIR=$data MEDEX_ADDR=127.0.0.1:$port MEDEX_LOG=warn \
  MEDEX_ADMIN_EMAIL=admin@example.com MEDEX_ADMIN_PASSWORD=admin-password-1 $server &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/api/health" | jq -e '.status == "healthy"' >/dev/null

scripts/walkthrough.sh "http://127.0.0.1:$port" >/dev/null
echo "smoke: walkthrough passed"
$bin/simulate "http://127.0.0.1:$port" --orders 2 --speed 400 >/dev/null
echo "smoke: simulate passed"
# Outputs are read whole before grep: `grep -q` stops reading at its match, and under pipefail the
# writer's broken pipe would fail the step at random.
metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
grep -q medex_http_requests_total <<<"$metrics"
echo "smoke: metrics passed"

kill -TERM $pid
wait $pid
echo "smoke: graceful shutdown exited 0"

created=$(MEDEX_DATA_DIR=$data MEDEX_ADMIN_PASSWORD=second-admin-pass $server --create-admin second@example.com)
grep -q "created admin" <<<"$created"
echo "smoke: --create-admin passed"
help=$($server --help)
grep -q MEDEX_JWT_SECRET <<<"$help"
echo "smoke: --help passed"
