#!/usr/bin/env bash
# demo.sh - the main job on embedded defaults: build and start the local HAPI sandbox, start the
# iop-bridge API on SQLite (its embedded worker delivers the outbox and listens for Tasks), run
# the demo step-down referral end to end, and say where to look.
# Both servers keep running afterwards; `make stop` stops them (with the same HAPI_RUN_DIR).
# Ports: HAPI_PORT (default 8090) and IOP_BRIDGE_API_PORT (default 8000).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

scripts/setup.sh
sandbox/hapi/start.sh

API_PORT="${IOP_BRIDGE_API_PORT:-8000}"
# iop-bridge talks to the HAPI server started above (HAPI_PORT moves both).
export IOP_BRIDGE_FHIR_BASE_URL="${IOP_BRIDGE_FHIR_BASE_URL:-http://127.0.0.1:${HAPI_PORT:-8090}/fhir}"
RUN_DIR="$REPO/var/iop-bridge"
# One process owns the embedded SQLite database's background work; HAPI calls it back here.
export IOP_BRIDGE_EMBEDDED_WORKER=true
export IOP_BRIDGE_HOOK_BASE_URL="http://127.0.0.1:$API_PORT/fhir-hooks"
export IOP_BRIDGE_INBOUND_POLL_SECONDS="${IOP_BRIDGE_INBOUND_POLL_SECONDS:-10}"
if [ ! -s "$RUN_DIR/hook-token" ]; then
  mkdir -p "$RUN_DIR"
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/hook-token"
fi
IOP_BRIDGE_HOOK_TOKEN="$(cat "$RUN_DIR/hook-token")"
export IOP_BRIDGE_HOOK_TOKEN
mkdir -p "$RUN_DIR"
# A local demo credential for a demo case manager of the IOP: an API key made here, kept in a
# file only this user reads; the settings hold only its SHA-256 (api/auth.py).
if [ ! -s "$RUN_DIR/demo-case-manager.key" ]; then
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/demo-case-manager.key")
fi
DEMO_KEY="$(cat "$RUN_DIR/demo-case-manager.key")"
DEMO_KEY_SHA256="$(printf '%s' "$DEMO_KEY" | sha256sum | cut -d' ' -f1)"
export IOP_BRIDGE_AUTH_API_KEYS="{\"$DEMO_KEY_SHA256\": {\"name\": \"demo-case-manager\", \"role\": \"case-manager\", \"organization\": \"${IOP_BRIDGE_ORGANIZATION_ID:-IOP-DEMO-ORG}\"}}"
if curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null 2>&1; then
  echo "iop-bridge API already answering on 127.0.0.1:$API_PORT"
else
  echo "starting iop-bridge API on 127.0.0.1:$API_PORT (log: $RUN_DIR/api.log)"
  setsid nohup .venv/bin/iop-bridge serve --port "$API_PORT" >"$RUN_DIR/api.log" 2>&1 &
  echo $! >"$RUN_DIR/api.pid"
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null; then
    echo "iop-bridge API did not become healthy; last log lines:" >&2
    tail -n 30 "$RUN_DIR/api.log" >&2
    exit 1
  fi
fi

echo
echo "== demo step-down referral"
.venv/bin/python sandbox/demo_step_down.py

cat <<EOT

Where to look:
  handoff tracker       http://127.0.0.1:$API_PORT/tracker
                        sign in as the demo case manager: choose "API key" and paste
                        $DEMO_KEY
                        (kept in $RUN_DIR/demo-case-manager.key)
  discharge a client    in the tracker, to next provider OUTPT-HARBOR (step 6 above)
  handoffs (CLI)        .venv/bin/iop-bridge handoffs
  iop-bridge health     http://127.0.0.1:$API_PORT/health
  API docs              http://127.0.0.1:$API_PORT/docs
  Tasks on HAPI         $IOP_BRIDGE_FHIR_BASE_URL/Task?_sort=-_lastUpdated
  API log               $RUN_DIR/api.log
Stop both servers with: make stop
EOT
