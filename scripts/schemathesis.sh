#!/usr/bin/env bash
# Runs schemathesis (PyPI, 4.x) against the served OpenAPI document with all its checks, as an
# anonymous client, as a customer and as a pharmacy, and fails on any failure. It builds and
# starts the example server on a free loopback port with a temporary data directory, seeds a
# pharmacy with a driver, a customer and orders in several states (so lists, reports and exports
# hold real records), runs `st run` once per identity and stops the server. Each run is bounded:
# 10 s per request, 3 minutes in all (a run that takes longer fails).
#
# Usage: scripts/schemathesis.sh [EXAMPLES]   (EXAMPLES per operation, default 25; the seed is
# fixed so that runs repeat, MEDEX_ST_SEED picks another)
# Needs curl, jq and schemathesis (`pip install 'schemathesis>=4,<5'`). Reports go to
# target/schemathesis/ (JUnit XML per run).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-25}

cargo build --quiet --example server
server=${CARGO_TARGET_DIR:-target}/debug/examples/server
reports=${CARGO_TARGET_DIR:-target}/schemathesis
mkdir -p "$reports"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
pid=
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap stop EXIT

MEDEX_DATA_DIR=$data MEDEX_ADDR=127.0.0.1:$port MEDEX_LOG=warn MEDEX_REGISTRATIONS_PER_HOUR=100000 $server >"$data/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$base/api/health" >/dev/null && break; sleep 0.2; done
curl -sf "$base/api/health" >/dev/null

# Seed data: a pharmacy, its driver, a customer and three orders (pending, on its way, delivered).
json() { curl -sS --fail-with-body -H 'content-type: application/json' "$@"; }
token() { json -X POST "$base/api/auth/login" -d "{\"email\":\"$1\",\"password\":\"$2\"}" | jq -r .access_token; }
vendor_id=$(json -X POST "$base/api/vendors/register" -d '{"email":"owner@pharmacy.example",
  "password":"pharmacy-pass-1","business_name":"Fuzzed Pharmacy","address":"Alexanderplatz 1",
  "latitude":52.5219,"longitude":13.4132}' | jq -r .vendor_id)
vendor=$(token owner@pharmacy.example pharmacy-pass-1)
driver_id=$(json -X POST "$base/api/drivers/register" -H "authorization: Bearer $vendor" -d '{
  "email":"dee@pharmacy.example","password":"driver-pass-1","full_name":"Dee Driver",
  "vehicle_type":"bike"}' | jq -r .driver_id)
driver=$(token dee@pharmacy.example driver-pass-1)
customer=$(json -X POST "$base/api/auth/register" -d '{"email":"ann@example.com",
  "password":"customer-pass-1","full_name":"Ann Patient"}' | jq -r .access_token)
order() {
  json -X POST "$base/api/orders" -H "authorization: Bearer $customer" -d '{"vendor_id":"'"$vendor_id"'",
    "delivery_address":"Torstrasse 1","delivery_latitude":52.529,"delivery_longitude":13.401,
    "customer_name":"Ann Patient","customer_phone":"+49 30 1234",
    "items":[{"name":"Amoxicillin 500mg","quantity":1}]}' | jq -r .id
}
move() { json -X PATCH "$base/api/orders/$1" -H "authorization: Bearer $2" -d "{\"status\":\"$3\"}" >/dev/null; }
walk() { # order, then the statuses up to where it should stay
  local id=$1; shift
  move "$id" "$vendor" accepted
  json -X PATCH "$base/api/drivers/$driver_id/status" -H "authorization: Bearer $driver" \
    -d '{"status":"available"}' >/dev/null
  json -X POST "$base/api/orders/$id/assign-driver" -H "authorization: Bearer $vendor" \
    -d "{\"driver_id\":\"$driver_id\"}" >/dev/null
  for status in "$@"; do move "$id" "$driver" "$status"; done
}
pending=$(order)
delivered=$(order)
walk "$delivered" picked_up out_for_delivery delivered
on_its_way=$(order)
walk "$on_its_way" picked_up

# What schemathesis is told beyond the document: the seeded records, so that operations on the
# pharmacy's own ids answer with data, and the exceptions below, each narrowed to the operations
# it concerns (.ci/run names them too).
config=$data/schemathesis.toml
cat >"$config" <<EOF
# Each run has the identity it is given (none, or a token): no account signed up on its own.
[auth]
auto-signup = false

# Every run starts afresh: no cache of earlier failures replayed first.
[cache]
enabled = false

# The pharmacy's own records, for the operations that take their ids.
[[operations]]
include-path-regex = "^/api/(vendors|reports/vendors)/\\\\{id\\\\}"
parameters = { "path.id" = "$vendor_id" }

[[operations]]
include-path-regex = "^/api/drivers/\\\\{id\\\\}"
parameters = { "path.id" = "$driver_id" }

[[operations]]
include-path-regex = "^/api/orders/\\\\{id\\\\}"
parameters = { "path.id" = "$pending" }

# Schema-valid requests that may still be refused with 422, for a rule OpenAPI cannot state.
[[operations]]
# \`from\` must not come after \`to\`, nor more than 366 days before it.
include-name = ["GET /api/drivers/{id}/earnings", "GET /api/reports/vendors/{id}/drivers",
  "POST /api/vendors/{id}/export-csv"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
# An upload is recognised by its content (JPEG, PNG or WebP magic bytes), which a schema can only
# name (415 for other bytes).
include-name = ["POST /api/uploads/proof", "POST /api/uploads/signature"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "415", "429", "5xx"]

[[operations]]
# A batch of fixes holds times of the last 24 hours only.
include-name = ["POST /api/drivers/{id}/location"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
# The body names a record that must exist: a pharmacy, a driver of the order's fleet.
include-name = ["POST /api/orders", "POST /api/orders/{id}/assign-driver"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
EOF

status=0
run() { # name, then extra st arguments
  local name=$1; shift
  echo "schemathesis: $name"
  timeout 180 st --config-file "$config" run "$base/api/openapi.json" --url "$base" \
    --checks all --max-examples "$examples" --seed "${MEDEX_ST_SEED:-20261201}" \
    --request-timeout 10 --workers 1 --generation-database none --no-color \
    --report junit --report-junit-path "$reports/$name.xml" "$@" || status=1
}
run anonymous
run customer -H "Authorization: Bearer $customer"
run vendor -H "Authorization: Bearer $vendor"
if [ $status -eq 0 ]; then
  echo "schemathesis: no failures"
else
  echo "schemathesis: failures above; the server's log ends with:"
  tail -n 20 "$data/server.log"
fi
exit $status
