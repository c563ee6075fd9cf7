#!/usr/bin/env bash
# start.sh - starts the iop-bridge HAPI FHIR R4 sandbox server in the background and waits until
# GET http://127.0.0.1:$HAPI_PORT/fhir/metadata answers 200. Builds the jar first if needed.
#
# Environment:
#   HAPI_PORT           port on 127.0.0.1 (default 8090)
#   HAPI_DB             h2 (in-memory, default) | h2-file | postgres
#   HAPI_DATA_DIR       directory of the h2-file database (default $HAPI_RUN_DIR/data)
#   HAPI_DB_URL         JDBC URL for postgres (default jdbc:postgresql://127.0.0.1:5432/hapi)
#   HAPI_DB_USER        postgres user (default hapi)
#   HAPI_DB_PASSWORD    postgres password (default hapi)
#   HAPI_RUN_DIR        where hapi.pid and hapi.log go (default <repo>/var/hapi)
#   HAPI_START_TIMEOUT  seconds to wait for /fhir/metadata (default 300)
#   HAPI_JAVA_OPTS      JVM options (default -Xmx1536m)
#   HAPI_PROFILE        sandbox (default: the project's test settings) | stock (the official JPA
#                       starter's defaults: search cache 60 s, rest-hook off, no external references,
#                       no multiple delete) | stock-resthook (stock with rest-hook subscriptions on)
# Extra arguments are passed to the application, e.g. ./start.sh --hapi.fhir.expunge_enabled=false
# Idempotent: if a HAPI server already answers on the port, it says so and exits 0.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
JAR="$HERE/target/iop-hapi-sandbox.jar"

HAPI_PORT="${HAPI_PORT:-8090}"
HAPI_DB="${HAPI_DB:-h2}"
HAPI_RUN_DIR="${HAPI_RUN_DIR:-$REPO/var/hapi}"
HAPI_START_TIMEOUT="${HAPI_START_TIMEOUT:-300}"
HAPI_JAVA_OPTS="${HAPI_JAVA_OPTS:--Xmx1536m}"
HAPI_PROFILE="${HAPI_PROFILE:-sandbox}"
PID_FILE="$HAPI_RUN_DIR/hapi.pid"
LOG_FILE="$HAPI_RUN_DIR/hapi.log"
BASE_URL="http://127.0.0.1:$HAPI_PORT/fhir"

if ! command -v curl >/dev/null 2>&1; then
  echo "start.sh: curl is required (Debian: apt-get install -y curl)" >&2
  exit 1
fi
if ! [[ "$HAPI_PORT" =~ ^[0-9]+$ ]]; then
  echo "start.sh: HAPI_PORT must be a number, got '$HAPI_PORT'" >&2
  exit 1
fi

# Prints "hapi" if a HAPI FHIR server answers on the port, "other" if something else answers,
# "none" if nothing answers.
probe() {
  local body
  if body="$(curl -s --max-time 5 -H 'Accept: application/fhir+json' "$BASE_URL/metadata" 2>/dev/null)"; then
    # here-strings, not pipes: with pipefail, "printf | grep -q" can fail on SIGPIPE
    if grep -q '"CapabilityStatement"' <<<"$body" && grep -q 'HAPI FHIR' <<<"$body"; then
      echo hapi
    elif [ -n "$body" ]; then
      echo other
    else
      # connected but empty answer (e.g. still starting, or not HTTP)
      echo other
    fi
  else
    echo none
  fi
}

metadata_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE_URL/metadata" 2>/dev/null || true
}

state="$(probe)"
if [ "$state" = hapi ]; then
  echo "start.sh: a HAPI FHIR server already answers at $BASE_URL (nothing started)."
  exit 0
fi

mkdir -p "$HAPI_RUN_DIR"

existing_pid=""
if [ -f "$PID_FILE" ]; then
  existing_pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [ -n "$existing_pid" ] && kill -0 "$existing_pid" 2>/dev/null; then
    echo "start.sh: process $existing_pid from $PID_FILE is still running (probably starting); waiting for it."
  else
    rm -f "$PID_FILE"
    existing_pid=""
  fi
fi

if [ -z "$existing_pid" ] && [ "$state" = other ]; then
  echo "start.sh: port $HAPI_PORT on 127.0.0.1 is used by something that is not a HAPI FHIR server." >&2
  echo "start.sh: stop it or choose another port with HAPI_PORT=..." >&2
  exit 1
fi

case "$HAPI_PROFILE" in
  sandbox) profile_args=() ;;
  stock) profile_args=(--spring.profiles.active=stock) ;;
  stock-resthook) profile_args=(--spring.profiles.active=stock,resthook) ;;
  *)
    echo "start.sh: HAPI_PROFILE must be sandbox, stock or stock-resthook, got '$HAPI_PROFILE'" >&2
    exit 1
    ;;
esac

t0=$(date +%s.%N)

if [ -z "$existing_pid" ]; then
  "$HERE/build.sh"

  # Database selection, passed to Spring Boot as environment variables of the java process only.
  db_env=()
  case "$HAPI_DB" in
    h2)
      ;;
    h2-file)
      HAPI_DATA_DIR="${HAPI_DATA_DIR:-$HAPI_RUN_DIR/data}"
      mkdir -p "$HAPI_DATA_DIR"
      # DB_CLOSE_ON_EXIT=FALSE: let Spring close the database on shutdown (otherwise H2's own
      # shutdown hook closes it first and every late query fails with "Database is already closed")
      db_env+=("SPRING_DATASOURCE_URL=jdbc:h2:file:$(cd "$HAPI_DATA_DIR" && pwd)/hapi;DB_CLOSE_ON_EXIT=FALSE")
      ;;
    postgres)
      db_env+=("SPRING_DATASOURCE_URL=${HAPI_DB_URL:-jdbc:postgresql://127.0.0.1:5432/hapi}")
      db_env+=("SPRING_DATASOURCE_USERNAME=${HAPI_DB_USER:-hapi}")
      db_env+=("SPRING_DATASOURCE_PASSWORD=${HAPI_DB_PASSWORD:-hapi}")
      db_env+=("SPRING_DATASOURCE_DRIVERCLASSNAME=org.postgresql.Driver")
      db_env+=("SPRING_JPA_PROPERTIES_HIBERNATE_DIALECT=ca.uhn.fhir.jpa.model.dialect.HapiFhirPostgresDialect")
      ;;
    *)
      echo "start.sh: HAPI_DB must be h2, h2-file or postgres, got '$HAPI_DB'" >&2
      exit 1
      ;;
  esac

  t0=$(date +%s.%N)
  echo "start.sh: starting HAPI FHIR (db=$HAPI_DB, profile=$HAPI_PROFILE, port=$HAPI_PORT), log: $LOG_FILE"
  # setsid + nohup: own session, so the server survives the calling shell and its Ctrl-C.
  # Runs in $HAPI_RUN_DIR so that nothing lands in the caller's working directory.
  cd "$HAPI_RUN_DIR"
  # shellcheck disable=SC2086
  env "${db_env[@]}" setsid nohup java $HAPI_JAVA_OPTS -jar "$JAR" \
    --server.port="$HAPI_PORT" --server.address=127.0.0.1 ${profile_args[@]+"${profile_args[@]}"} "$@" \
    >"$LOG_FILE" 2>&1 </dev/null &
  existing_pid=$!
  echo "$existing_pid" >"$PID_FILE"
fi

deadline=$(( $(date +%s) + HAPI_START_TIMEOUT ))
while :; do
  if [ "$(metadata_status)" = 200 ]; then
    break
  fi
  if ! kill -0 "$existing_pid" 2>/dev/null; then
    echo "start.sh: ERROR: the HAPI server process ($existing_pid) exited before answering on $BASE_URL/metadata." >&2
    echo "start.sh: last 60 lines of $LOG_FILE:" >&2
    tail -n 60 "$LOG_FILE" >&2 || true
    rm -f "$PID_FILE"
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "start.sh: ERROR: $BASE_URL/metadata did not answer 200 within ${HAPI_START_TIMEOUT}s (process $existing_pid still running; stop it with stop.sh)." >&2
    echo "start.sh: last 60 lines of $LOG_FILE:" >&2
    tail -n 60 "$LOG_FILE" >&2 || true
    exit 1
  fi
  sleep 1
done

elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "start.sh: HAPI FHIR R4 server is up at $BASE_URL (pid $existing_pid, started in ${elapsed}s)."
