#!/usr/bin/env bash
# The LabEdge demo: a cloud API and the gateways of two proximity labs on this machine, over HTTPS,
# on a synthetic lab network. Installs and starts PostgreSQL and Redis when absent, builds, migrates,
# seeds, provisions both gateways, starts everything and prints how to talk to it. Ctrl-C stops it.
#
#   deploy/demo.sh                        # 3,000 patients
#   LABEDGE_DEMO_PATIENTS=20000 deploy/demo.sh
#
# Everything the demo writes (certificates, configs, logs) goes to .demo/ (or $LABEDGE_DEMO_DIR) and
# is recreated on each run, as are its databases (labedge_demo_*).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. deploy/lib/services.sh

PATIENTS=${LABEDGE_DEMO_PATIENTS:-3000}
DEMO=${LABEDGE_DEMO_DIR:-$ROOT/.demo}
API_PORT=${LABEDGE_DEMO_API_PORT:-8443}
GATEWAY_PORTS=(9443 9444)
# Each gateway's console and /metrics have listeners of their own (as in production): the tablet
# listener has no such route.
CONSOLE_PORTS=(9543 9544)
METRICS_PORTS=(9643 9644)
LABS=(VILLEURBANNE VENISSIEUX)

ensure_rust
ensure_postgres
ensure_redis
command -v curl >/dev/null || apt_install curl ca-certificates

log "building (the first build takes several minutes)"
cargo build --bins --quiet
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

log "resetting the demo state in $DEMO"
rm -rf "$DEMO"
mkdir -p "$DEMO"
sql() { PGOPTIONS=--client-min-messages=warning psql -q -v ON_ERROR_STOP=1 "$LABEDGE_PG/postgres" -c "$1" >/dev/null; }
edge_db() { echo "labedge_demo_edge_$(echo "$1" | tr 'A-Z-' 'a-z_')"; }
for db in labedge_demo_cloud $(for lab in "${LABS[@]}"; do edge_db "$lab"; done); do
  sql "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  sql "CREATE DATABASE $db"
done
if command -v redis-cli >/dev/null; then
  for lab in "${LABS[@]}"; do
    redis-cli --scan --pattern "labedge:$lab:*" | xargs -r redis-cli del >/dev/null
  done
fi

# The central IT view (/central) takes a bearer token; the API keeps only its SHA-256.
CENTRAL_TOKEN=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
printf '%s\n' "$CENTRAL_TOKEN" >"$DEMO/central-token"
CENTRAL_TOKEN_SHA256=$(printf '%s' "$CENTRAL_TOKEN" | sha256sum | cut -d' ' -f1)

cat >"$DEMO/api.toml" <<TOML
# The demo's cloud API (sandbox profile: synthetic data).
profile = "sandbox"
[http]
addr = "127.0.0.1:$API_PORT"
tls = { cert = "$DEMO/api/server.pem", key = "$DEMO/api/server.key", client_ca = "$DEMO/pki/ca.pem", client_auth = "optional" }
[database]
url = "$LABEDGE_PG/labedge_demo_cloud"
[pki]
dir = "$DEMO/pki"
[provisioning]
upstreams = [{ name = "cloud", url = "https://localhost:$API_PORT" }]
[central]
tokens_sha256 = ["$CENTRAL_TOKEN_SHA256"]
TOML
api() { "$BIN/api" --config "$DEMO/api.toml" "$@"; }

log "cloud: certificates, migrations, synthetic network of $PATIENTS patients"
api init-pki --hostname localhost --hostname 127.0.0.1 >/dev/null
api migrate >/dev/null
"$BIN/labedge-demo" --config "$DEMO/api.toml" --patients "$PATIENTS" --proximity-labs "${#LABS[@]}" >"$DEMO/seed.txt"

for i in "${!LABS[@]}"; do
  lab=${LABS[$i]}
  log "gateway of $lab: provisioning and migrations"
  # On this machine the "VPN" is the loopback: tablets and the admin console both come from 127.0.0.1.
  api provision-gateway --lab "$lab" --out "$DEMO/gateway-$lab" --listen "127.0.0.1:${GATEWAY_PORTS[$i]}" \
    --admin-listen "127.0.0.1:${CONSOLE_PORTS[$i]}" --monitoring-listen "127.0.0.1:${METRICS_PORTS[$i]}" \
    --database-url "$LABEDGE_PG/$(edge_db "$lab")" --tablet-range 127.0.0.0/8 >/dev/null
  "$BIN/edge-gateway" --config "$DEMO/gateway-$lab/edge-gateway.toml" migrate >/dev/null
done
# As in production, the gateways serve as a login role of labedge_gateway_runtime (created by the
# migrations), which cannot rewrite the audit log; `migrate` ran as the owner (the demo's superuser).
sql "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'labedge_demo_gateway') THEN
       CREATE ROLE labedge_demo_gateway LOGIN PASSWORD 'labedge_demo_gateway' IN ROLE labedge_gateway_runtime;
     END IF; END \$\$"
serving_url() { echo "${LABEDGE_PG/labedge:labedge@/labedge_demo_gateway:labedge_demo_gateway@}/$(edge_db "$1")"; }

PIDS=()
stop() {
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    log "stopping"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
}
trap stop INT TERM EXIT

api serve >"$DEMO/api.log" 2>&1 &
PIDS+=($!)
for i in "${!LABS[@]}"; do
  lab=${LABS[$i]}
  LABEDGE_GATEWAY_DATABASE__URL=$(serving_url "$lab") \
    "$BIN/edge-gateway" --config "$DEMO/gateway-$lab/edge-gateway.toml" serve >"$DEMO/gateway-$lab.log" 2>&1 &
  PIDS+=($!)
done

CURL="curl --cacert $DEMO/pki/ca.pem"
healthy() { $CURL -sf "https://localhost:$1/healthz" >/dev/null; }
for port in "$API_PORT" "${GATEWAY_PORTS[@]}" "${CONSOLE_PORTS[@]}" "${METRICS_PORTS[@]}"; do
  for _ in $(seq 1 100); do healthy "$port" && break; sleep 0.2; done
  healthy "$port" || { tail -n 20 "$DEMO"/*.log >&2; die "the service on port $port did not start (logs above)"; }
done

# The gateways bootstrap from the cloud on their own; their console answers once the lab's data is in.
LAB=${LABS[0]}
GW="https://localhost:${GATEWAY_PORTS[0]}"
CONSOLE="https://localhost:${CONSOLE_PORTS[0]}"
cloud_sql() { psql -At "$LABEDGE_PG/labedge_demo_cloud" -c "$1"; }
staff_login() {
  cloud_sql "SELECT s.login FROM staff s JOIN labs l ON l.id = s.lab_id WHERE l.code = '$LAB' AND s.role = '$1' ORDER BY s.login LIMIT 1"
}
ADMIN=$(staff_login lab_admin)
NURSE=$(staff_login nurse)
json_field() { sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p'; }
show() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; }
for _ in $(seq 1 150); do
  status=$($CURL -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"login":"x","password":"x"}' "$CONSOLE/admin/v1/login")
  [ "$status" = 401 ] && break
  sleep 0.2
done

log "walking through enrolling a tablet and logging a nurse in at $LAB"
show "$CURL -c $DEMO/admin.jar -H 'content-type: application/json' -d '{\"login\":\"$ADMIN\",\"password\":\"labedge-admin\"}' $CONSOLE/admin/v1/login"
CSRF=$($CURL -s -c "$DEMO/admin.jar" -H 'content-type: application/json' \
  -d "{\"login\":\"$ADMIN\",\"password\":\"labedge-admin\"}" "$CONSOLE/admin/v1/login" | json_field csrf_token)
[ -n "$CSRF" ] || die "the lab admin could not log in (see $DEMO/gateway-$LAB.log)"
echo "  (session cookie in $DEMO/admin.jar, CSRF token $CSRF)"
show "$CURL -b $DEMO/admin.jar -H 'x-csrf-token: $CSRF' -X POST $CONSOLE/admin/v1/enrollment-codes"
CODE_JSON=$($CURL -s -b "$DEMO/admin.jar" -H "x-csrf-token: $CSRF" -X POST "$CONSOLE/admin/v1/enrollment-codes")
# The QR code (an SVG of a few kilobytes) is for the console's page: shortened here.
echo "  $CODE_JSON" | sed -E 's/,"qr_svg":".*"\}$/,"qr_svg":"<svg …>"}/'
CODE=$(echo "$CODE_JSON" | json_field code)
show "$CURL -H 'content-type: application/json' -d '{\"code\":\"$CODE\",\"label\":\"Tablette 1\"}' $GW/v1/devices/enroll"
ENROLLED=$($CURL -s -H 'content-type: application/json' -d "{\"code\":\"$CODE\",\"label\":\"Tablette 1\"}" "$GW/v1/devices/enroll")
echo "  $ENROLLED"
DEVICE_ID=$(echo "$ENROLLED" | json_field device_id)
DEVICE_SECRET=$(echo "$ENROLLED" | json_field device_secret)
LOGIN_BODY="{\"device_id\":\"$DEVICE_ID\",\"device_secret\":\"$DEVICE_SECRET\",\"login\":\"$NURSE\",\"pin\":\"1234\"}"
show "$CURL -H 'content-type: application/json' -d '$LOGIN_BODY' $GW/v1/auth/login"
TOKENS=$($CURL -s -H 'content-type: application/json' -d "$LOGIN_BODY" "$GW/v1/auth/login")
TOKEN=$(echo "$TOKENS" | json_field access_token)
[ -n "$TOKEN" ] || die "login failed: $TOKENS"
echo "  access token ${TOKEN:0:24}…, refresh token, 48 h offline grace"
show "$CURL -H \"authorization: Bearer \$TOKEN\" $GW/v1/me"
$CURL -s -H "authorization: Bearer $TOKEN" "$GW/v1/me"
echo
echo "TOKEN=$TOKEN" >"$DEMO/tablet.env"

log "the lab information system over HL7 FHIR R4: a transaction Bundle, then its patient at $LAB's gateway"
api create-integration-client --name demo-lis --scope 'system/*.*' --out "$DEMO/lis" >/dev/null
LIS_TLS="--cert $DEMO/lis/demo-lis.pem --key $DEMO/lis/demo-lis.key"
LAB_ID=$(cloud_sql "SELECT id FROM labs WHERE code = '$LAB'")
EXAM=$(cloud_sql "SELECT code FROM exam_catalog WHERE active ORDER BY code LIMIT 1")
# A valid INS-NIR: the key is 97 - (the first 13 digits mod 97).
NIR13="2$(date +%y)0169123$(printf '%03d' $((RANDOM % 1000)))"
NIR="$NIR13$(printf '%02d' $((97 - 10#$NIR13 % 97)))"
VISIT_AT=$(date -u -d '+1 hour' +%Y-%m-%dT%H:00:00Z)
cat >"$DEMO/lis/visit-bundle.json" <<JSON
{"resourceType": "Bundle", "type": "transaction", "entry": [
 {"fullUrl": "urn:uuid:6f1c0d7e-0000-4000-8000-000000000001", "request": {"method": "POST", "url": "Patient"},
  "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "$NIR"}],
   "name": [{"use": "official", "family": "FONTAINE", "given": ["Louise"]}], "gender": "female", "birthDate": "$(date +%Y)-01-09"}},
 {"fullUrl": "urn:uuid:6f1c0d7e-0000-4000-8000-000000000002", "request": {"method": "POST", "url": "ServiceRequest"},
  "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
   "subject": {"reference": "urn:uuid:6f1c0d7e-0000-4000-8000-000000000001"},
   "requester": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "10101010101"}, "display": "Dr Jean Roux"},
   "performer": [{"reference": "Organization/$LAB_ID"}], "authoredOn": "$(date +%F)",
   "orderDetail": [{"coding": [{"system": "https://labedge.labanalyse.fr/fhir/CodeSystem/exam", "code": "$EXAM"}]}]}},
 {"request": {"method": "POST", "url": "Appointment"},
  "resource": {"resourceType": "Appointment", "status": "booked", "start": "$VISIT_AT", "minutesDuration": 15,
   "appointmentType": {"coding": [{"system": "https://labedge.labanalyse.fr/fhir/CodeSystem/visit-kind", "code": "lab"}]},
   "participant": [{"actor": {"reference": "urn:uuid:6f1c0d7e-0000-4000-8000-000000000001"}, "status": "accepted"},
                   {"actor": {"reference": "Location/$LAB_ID"}, "status": "accepted"}],
   "basedOn": [{"reference": "urn:uuid:6f1c0d7e-0000-4000-8000-000000000002"}]}}]}
JSON
show "$CURL $LIS_TLS -H 'content-type: application/fhir+json' -d @$DEMO/lis/visit-bundle.json https://localhost:$API_PORT/fhir/R4"
ANSWER=$($CURL -s $LIS_TLS -H 'content-type: application/fhir+json' -d @"$DEMO/lis/visit-bundle.json" "https://localhost:$API_PORT/fhir/R4")
PATIENT_ID=$(echo "$ANSWER" | sed -n 's/.*"location":"Patient\/\([0-9a-f-]*\)\/_history.*/\1/p')
[ -n "$PATIENT_ID" ] || die "the Bundle was refused: $ANSWER"
echo "$ANSWER" | grep -o '"status":"[0-9]* [A-Za-z]*"' | sed 's/^/  /'
show "$CURL -H \"authorization: Bearer \$TOKEN\" $GW/v1/patients/$PATIENT_ID"
for _ in $(seq 1 100); do
  SEEN=$($CURL -s -o "$DEMO/lis/patient-at-gateway.json" -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$GW/v1/patients/$PATIENT_ID")
  [ "$SEEN" = 200 ] && break
  sleep 0.2
done
[ "$SEEN" = 200 ] || die "the FHIR patient did not reach the gateway (see $DEMO/gateway-$LAB.log)"
echo "  $(cat "$DEMO/lis/patient-at-gateway.json")"

log "the desk at $LAB: a walk-in patient registered, then booked in a free slot (relayed to the cloud and the LIS)"
WALKIN_ID=$(cat /proc/sys/kernel/random/uuid)
WALKIN="{\"id\":\"$WALKIN_ID\",\"birth_family_name\":\"Quérel\",\"birth_given_names\":\"Maëlle Anne\",\"birth_date\":\"1991-0$((RANDOM % 9 + 1))-1$((RANDOM % 9))\",\"sex\":\"F\",\"birth_place_code\":\"35238\",\"phone\":\"+33 6 11 22 33 44\",\"address\":{\"line\":\"4 rue de la Monnaie\",\"postal_code\":\"35000\",\"city\":\"Rennes\"},\"identity_document\":\"id_card\"}"
desk_post() { # path body: POSTs as the nurse's tablet with a fresh Idempotency-Key
  $CURL -s -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -H "idempotency-key: $(cat /proc/sys/kernel/random/uuid)" -d "$2" "$GW$1"
}
show "$CURL -H \"authorization: Bearer \$TOKEN\" -H 'idempotency-key: <uuid>' -H 'content-type: application/json' -d '$WALKIN' $GW/v1/patients"
REGISTERED=$(desk_post /v1/patients "$WALKIN")
if echo "$REGISTERED" | grep -q '"code":"possible_duplicate"'; then
  # Another patient of the synthetic network looks alike: the nurse checked, it is someone else.
  echo "  $REGISTERED" | cut -c1-300
  CANDIDATES=$(echo "$REGISTERED" | grep -o '"candidates":\[.*' | grep -o '"id":"[0-9a-f-]*"' | cut -d'"' -f4 | sed 's/.*/"&"/' | paste -sd, -)
  WALKIN="${WALKIN%\}},\"confirmed_distinct_from\":[$CANDIDATES]}"
  show "(the nurse checks the candidates, then sends again with \"confirmed_distinct_from\")"
  REGISTERED=$(desk_post /v1/patients "$WALKIN")
fi
echo "  $REGISTERED"
echo "$REGISTERED" | grep -q "\"id\":\"$WALKIN_ID\"" || die "the walk-in was not registered: $REGISTERED"
for days in 1 2 3 4 5 6 7; do
  DAY=$(date -d "+$days day" +%F)
  SLOT=$($CURL -s -H "authorization: Bearer $TOKEN" "$GW/v1/slots?date=$DAY&kind=lab" |
    grep -o '"start":"[^"]*","end":"[^"]*","capacity":[0-9]*,"free":[1-9]' | head -n 1 | json_field start)
  [ -n "$SLOT" ] && break
done
[ -n "$SLOT" ] || die "no free lab slot in the coming week"
show "$CURL -H \"authorization: Bearer \$TOKEN\" '$GW/v1/slots?date=$DAY&kind=lab'"
echo "  first free slot: $SLOT"
BOOKING="{\"id\":\"$(cat /proc/sys/kernel/random/uuid)\",\"patient_id\":\"$WALKIN_ID\",\"kind\":\"lab\",\"scheduled_at\":\"$SLOT\"}"
show "$CURL -H \"authorization: Bearer \$TOKEN\" -H 'idempotency-key: <uuid>' -H 'content-type: application/json' -d '$BOOKING' $GW/v1/appointments"
BOOKED=$(desk_post /v1/appointments "$BOOKING")
echo "  $BOOKED"
echo "$BOOKED" | grep -q '"status":"scheduled"' || die "the booking failed: $BOOKED"
show "$CURL $LIS_TLS https://localhost:$API_PORT/fhir/R4/Patient/$WALKIN_ID"
for _ in $(seq 1 100); do
  SEEN=$($CURL -s -o "$DEMO/lis/walk-in.json" -w '%{http_code}' $LIS_TLS "https://localhost:$API_PORT/fhir/R4/Patient/$WALKIN_ID")
  [ "$SEEN" = 200 ] && break
  sleep 0.2
done
[ "$SEEN" = 200 ] || die "the walk-in did not reach the cloud (see $DEMO/gateway-$LAB.log)"
echo "  $(cut -c1-400 "$DEMO/lis/walk-in.json")…"

cat <<TEXT

  LabEdge demo running (Ctrl-C stops it)

  cloud API              https://localhost:$API_PORT     log: $DEMO/api.log
  gateway ${LABS[0]}   https://localhost:${GATEWAY_PORTS[0]}     log: $DEMO/gateway-${LABS[0]}.log
  gateway ${LABS[1]}     https://localhost:${GATEWAY_PORTS[1]}     log: $DEMO/gateway-${LABS[1]}.log
  synthetic network      $DEMO/seed.txt (labs, staff logins; every PIN is 1234, admin password labedge-admin)

  admin console          $CONSOLE/admin   (login $ADMIN, password labedge-admin;
                         the browser must trust $DEMO/pki/ca.pem, or accept the warning)
  FHIR R4 (the LIS)      https://localhost:$API_PORT/fhir/R4   (client certificate in $DEMO/lis; docs/integration.md)
  central IT view        https://localhost:$API_PORT/central   (token in $DEMO/central-token)
    $CURL -H "authorization: Bearer \$(cat $DEMO/central-token)" https://localhost:$API_PORT/central/v1/gateways

  The nurse's token is in $DEMO/tablet.env. Try:
    . $DEMO/tablet.env
    $CURL -H "authorization: Bearer \$TOKEN" '$GW/v1/patients?q=mar'
    $CURL -H "authorization: Bearer \$TOKEN" '$GW/v1/appointments?date=$(date +%F)'
    $CURL https://localhost:$API_PORT/healthz https://localhost:${GATEWAY_PORTS[0]}/healthz https://localhost:${GATEWAY_PORTS[1]}/healthz
    $CURL https://localhost:$API_PORT/readyz
    $CURL -s https://localhost:${METRICS_PORTS[0]}/metrics | grep labedge_
    $CURL -s -o /dev/null -w '%{http_code}\n' $GW/admin   # 404: the tablet listener has no console
    $CURL -s https://localhost:${GATEWAY_PORTS[0]}/openapi.json | head -c 400

TEXT
# Runs until Ctrl-C, or until a service stops on its own (then everything stops, logs say why).
wait -n "${PIDS[@]}" || true
log "a service stopped on its own; see the logs in $DEMO"
