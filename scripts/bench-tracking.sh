#!/usr/bin/env bash
# GET /api/tracking/{token} of MedEx against a bare hyper server answering the same body, under the
# same wrk settings, in one run (DESIGN §8: MedEx at >= 50% of the baseline's requests/s).
#
# Usage: scripts/bench-tracking.sh [WRK ARGS...]      (default: -t2 -c32 -d10s)
# Environment: ROUNDS (default 2; the servers take turns, MedEx first), MEDEX_PORT (18000),
# BASELINE_PORT (18001), MEDEX_LOG (warn), SERVER (the server binary, default the release build of
# examples/server: set it to compare two builds). Needs wrk (apt-get install -y wrk), curl and jq.
# Both servers listen on loopback only and are stopped when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then WRK_ARGS=("$@"); else WRK_ARGS=(-t2 -c32 -d10s); fi
ROUNDS=${ROUNDS:-2}
MEDEX_PORT=${MEDEX_PORT:-18000}
BASELINE_PORT=${BASELINE_PORT:-18001}
for tool in wrk curl jq; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

cargo build --release --quiet --example server --example baseline --example loadgen
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

MEDEX_ADDR=127.0.0.1:$MEDEX_PORT MEDEX_DATA_DIR="$work/data" MEDEX_LOG=${MEDEX_LOG:-warn} \
  "${SERVER:-target/release/examples/server}" >"$work/server.log" 2>&1 &
pids+=($!)
MEDEX=http://127.0.0.1:$MEDEX_PORT
for _ in $(seq 100); do curl -sf "$MEDEX/api/health" >/dev/null && break; sleep 0.1; done
curl -sf "$MEDEX/api/health" >/dev/null || { cat "$work/server.log"; exit 1; }

# One order out for delivery with a driver position: the tracking view at its fullest (no trail).
target/release/examples/loadgen --target "127.0.0.1:$MEDEX_PORT" --state "$work/state.json" \
  --vendors 1 --drivers 1 --trackers 0 --setup-only
TOKEN=$(jq -r '.drivers[0].tracking_token' "$work/state.json")
DRIVER_ID=$(jq -r '.drivers[0].id' "$work/state.json")
DRIVER_TOKEN=$(jq -r '.drivers[0].account.access_token' "$work/state.json")
curl -sf -H "authorization: Bearer $DRIVER_TOKEN" -H 'content-type: application/json' \
  -d '{"latitude":52.525,"longitude":13.41,"accuracy":8,"speed":22}' \
  "$MEDEX/api/drivers/$DRIVER_ID/location" >/dev/null
curl -sf "$MEDEX/api/tracking/$TOKEN" >"$work/tracking.json"

target/release/examples/baseline "127.0.0.1:$BASELINE_PORT" "$work/tracking.json" >/dev/null &
pids+=($!)
BASELINE=http://127.0.0.1:$BASELINE_PORT
for _ in $(seq 100); do curl -sf "$BASELINE/" >/dev/null && break; sleep 0.1; done

rate() { wrk "${WRK_ARGS[@]}" --latency "$1" | tee -a "$work/wrk.log" | awk '/^Requests\/sec/ {print $2}'; }
p99() { awk '/^ +99%/ {v=$2} END {print v}' <(tail -n 20 "$work/wrk.log"); }

echo "body: $(wc -c <"$work/tracking.json") bytes; wrk ${WRK_ARGS[*]}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
medex_sum=0
baseline_sum=0
for round in $(seq "$ROUNDS"); do
  m=$(rate "$MEDEX/api/tracking/$TOKEN"); mp=$(p99)
  b=$(rate "$BASELINE/api/tracking/$TOKEN"); bp=$(p99)
  printf 'round %s: medex %10.0f req/s (p99 %s)   baseline %10.0f req/s (p99 %s)   ratio %.2f\n' \
    "$round" "$m" "$mp" "$b" "$bp" "$(awk -v a="$m" -v b="$b" 'BEGIN {print a / b}')"
  medex_sum=$(awk -v a="$medex_sum" -v b="$m" 'BEGIN {print a + b}')
  baseline_sum=$(awk -v a="$baseline_sum" -v b="$b" 'BEGIN {print a + b}')
done
if grep -q 'Non-2xx' "$work/wrk.log"; then
  echo "some answers were not 2xx:"; grep -B3 'Non-2xx' "$work/wrk.log"
fi
printf 'tracking / baseline over %s rounds: %.2f (target >= 0.50); load average %s\n' \
  "$ROUNDS" "$(awk -v a="$medex_sum" -v b="$baseline_sum" 'BEGIN {print a / b}')" "$(cut -d' ' -f1-3 /proc/loadavg)"
