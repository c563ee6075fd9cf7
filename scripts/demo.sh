#!/usr/bin/env bash
# demo.sh - the main job on embedded defaults: build and start the local HAPI sandbox, start the
# iop-bridge API on SQLite, run the demo step-down slice, and say where to look.
# Both servers keep running afterwards; `make stop` stops them.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

scripts/setup.sh
sandbox/hapi/start.sh

API_PORT="${IOP_BRIDGE_API_PORT:-8000}"
RUN_DIR="$REPO/var/iop-bridge"
mkdir -p "$RUN_DIR"
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
echo "== demo step-down slice"
.venv/bin/python sandbox/demo_slice.py

cat <<EOT

Where to look:
  iop-bridge health     http://127.0.0.1:$API_PORT/health
  sync records (SQLite) http://127.0.0.1:$API_PORT/sync-records
  API docs              http://127.0.0.1:$API_PORT/docs
  HAPI FHIR server      http://127.0.0.1:${HAPI_PORT:-8090}/fhir/Patient?identifier=IOP-DEMO-0002
Stop both servers with: make stop
EOT
