#!/usr/bin/env bash
# One delivery through the HTTP API, as shown in the README. Needs curl and jq, and a running
# server with an admin: MEDEX_ADMIN_EMAIL=admin@example.com MEDEX_ADMIN_PASSWORD=admin-password-1
# cargo run --example server. Usage: scripts/walkthrough.sh [BASE_URL]
set -euo pipefail
API=${1:-http://127.0.0.1:8000}/api
RUN=$RANDOM$RANDOM   # lets the script run more than once against one database
json() { curl -sS --fail-with-body -H 'content-type: application/json' "$@"; }

# 1. A pharmacy registers (anyone may) and logs in.
json -X POST "$API/vendors/register" -d '{
  "email": "owner'$RUN'@pharmacy.example", "password": "pharmacy-pass-1",
  "business_name": "Corner Pharmacy", "phone": "+49 30 555 0100",
  "address": "Alexanderplatz 1, Berlin", "latitude": 52.5219, "longitude": 13.4132 }' | jq .
VENDOR=$(json -X POST "$API/auth/login" -d '{"email":"owner'$RUN'@pharmacy.example","password":"pharmacy-pass-1"}' | jq -r .access_token)
VENDOR_ID=$(curl -sS -H "authorization: Bearer $VENDOR" "$API/auth/me" | jq -r .vendor_id)

# 2. It adds a driver to its fleet; the driver logs in and goes on duty.
DRIVER_ID=$(json -X POST "$API/drivers/register" -H "authorization: Bearer $VENDOR" -d '{
  "email": "dee'$RUN'@pharmacy.example", "password": "driver-pass-1", "full_name": "Dee Driver",
  "phone": "+49 30 555 0101", "vehicle_type": "bike" }' | jq -r .driver_id)
DRIVER=$(json -X POST "$API/auth/login" -d '{"email":"dee'$RUN'@pharmacy.example","password":"driver-pass-1"}' | jq -r .access_token)
json -X PATCH "$API/drivers/$DRIVER_ID/status" -H "authorization: Bearer $DRIVER" -d '{"status":"available"}' | jq .status

# 3. A customer registers and orders.
CUSTOMER=$(json -X POST "$API/auth/register" -d '{
  "email": "ann'$RUN'@example.com", "password": "customer-pass-1", "full_name": "Ann Patient" }' | jq -r .access_token)
ORDER=$(json -X POST "$API/orders" -H "authorization: Bearer $CUSTOMER" -d '{
  "vendor_id": "'$VENDOR_ID'", "delivery_address": "Torstrasse 1, Berlin",
  "delivery_latitude": 52.5290, "delivery_longitude": 13.4010,
  "customer_name": "Ann Patient", "customer_phone": "+49 30 555 0199",
  "items": [{"name": "Amoxicillin 500 mg", "quantity": 1, "notes": "after meals"}] }')
echo "$ORDER" | jq '{order_number, status, estimated_distance_km, delivery_fee}'
ORDER_ID=$(echo "$ORDER" | jq -r .id)
TRACKING=$(echo "$ORDER" | jq -r .tracking_token)

# 4. The pharmacy accepts and assigns the driver.
json -X PATCH "$API/orders/$ORDER_ID" -H "authorization: Bearer $VENDOR" -d '{"status":"accepted"}' | jq .status
json -X POST "$API/orders/$ORDER_ID/assign-driver" -H "authorization: Bearer $VENDOR" -d '{"driver_id":"'$DRIVER_ID'"}' | jq .status

# 5. The driver picks up, reports positions (the WebSocket does this every few seconds), delivers.
json -X POST "$API/orders/$ORDER_ID/assignment" -H "authorization: Bearer $DRIVER" -d '{"action":"accept"}' | jq .status
json -X PATCH "$API/orders/$ORDER_ID" -H "authorization: Bearer $DRIVER" -d '{"status":"picked_up"}' | jq .status
json -X POST "$API/drivers/$DRIVER_ID/location" -H "authorization: Bearer $DRIVER" -d '{"latitude":52.5250,"longitude":13.4080,"accuracy":8}' | jq .
json -X PATCH "$API/orders/$ORDER_ID" -H "authorization: Bearer $DRIVER" -d '{"status":"out_for_delivery"}' | jq .status

# 6. Anyone with the link tracks it (no login, no phone numbers).
curl -sS "$API/tracking/$TRACKING" | jq '{order_number, status, vendor_name, driver, eta_minutes}'

json -X PATCH "$API/orders/$ORDER_ID" -H "authorization: Bearer $DRIVER" -d '{"status":"delivered"}' | jq '{status, delivered_at}'

# 7. The pharmacy's daily report, and its orders as CSV.
TODAY=$(date -u +%F)
curl -sS --fail-with-body -H "authorization: Bearer $VENDOR" "$API/reports/vendors/$VENDOR_ID?date=$TODAY&tz=%2B00:00" | jq .
curl -sS --fail-with-body -X POST -H "authorization: Bearer $VENDOR" \
  "$API/vendors/$VENDOR_ID/export-csv?from=${TODAY}T00:00:00Z&to=$(date -u -d tomorrow +%F)T00:00:00Z"
echo "walkthrough complete"
