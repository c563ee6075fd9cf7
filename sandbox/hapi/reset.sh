#!/usr/bin/env bash
# reset.sh - empties the running HAPI sandbox server: POST $expunge with expungeEverything=true
# (deletes every resource and all history; needs hapi.fhir.expunge_enabled=true, the default here).
# Env: HAPI_PORT (default 8090). Prints the number of rows HAPI reports as expunged.
set -euo pipefail

HAPI_PORT="${HAPI_PORT:-8090}"
BASE_URL="http://127.0.0.1:$HAPI_PORT/fhir"

body='{"resourceType":"Parameters","parameter":[{"name":"expungeEverything","valueBoolean":true}]}'
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code="$(curl -s -o "$out" -w '%{http_code}' --max-time 300 -X POST \
  -H 'Content-Type: application/fhir+json' -H 'Accept: application/fhir+json' \
  --data "$body" "$BASE_URL/\$expunge" || true)"
if [ "$code" != 200 ]; then
  echo "reset.sh: \$expunge at $BASE_URL failed (HTTP ${code:-no answer}):" >&2
  cat "$out" >&2 || true
  echo >&2
  exit 1
fi
count="$(grep -o '"valueInteger"[^0-9]*[0-9]*' "$out" | grep -o '[0-9]*$' || true)"
echo "reset.sh: expunged everything at $BASE_URL (count=${count:-?})."
