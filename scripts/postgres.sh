#!/usr/bin/env bash
# postgres.sh - a private PostgreSQL cluster for iop-bridge's tests and local runs (no Docker).
#
#   scripts/postgres.sh start    install Debian's postgresql when missing, initdb on first use,
#                                start on 127.0.0.1, create the database; prints the URL
#   scripts/postgres.sh stop     stop the cluster (the data stays in $PG_DIR)
#   scripts/postgres.sh url      print the SQLAlchemy URL (postgresql+psycopg://...)
#   scripts/postgres.sh status   "running" or "stopped" (exit 0 / 3)
#
# Environment:
#   PG_PORT  port on 127.0.0.1 (default 55432; away from a system cluster on 5432)
#   PG_DIR   where the cluster lives (default <repo>/var/postgres)
#   PG_DB    database to create (default iop_bridge_test)
#
# The cluster is a throwaway test cluster: it listens on loopback only, trusts local
# connections, and runs with fsync off (a machine crash may lose it; a test run never needs it).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PG_PORT="${PG_PORT:-55432}"
PG_DIR="${PG_DIR:-$REPO/var/postgres}"
PG_DB="${PG_DB:-iop_bridge_test}"
PG_ROLE=iop_bridge  # the application's role: may create databases, is not a superuser
DATA="$PG_DIR/data"
LOG="$PG_DIR/postgres.log"
SOCKETS="$PG_DIR/run"

say() { echo "postgres.sh: $*" >&2; }

bindir() {
  # Debian installs each major version side by side; take the newest.
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; fi
}

install_if_missing() {
  [ -n "$(bindir)" ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    exit 1
  fi
  say "installing Debian package postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# PostgreSQL refuses to run as root: as root, run its programs as the `postgres` OS user
# (created by the Debian package); otherwise as the current user.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

prepare_dir() {
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$PG_DIR"
    if ! runuser -u postgres -- test -w "$PG_DIR"; then
      # e.g. a checkout under /root: the postgres user cannot reach it
      say "user postgres cannot write $PG_DIR; set PG_DIR to a directory it can reach"
      exit 1
    fi
  fi
}

init_cluster() {
  local bin="$1"
  [ -f "$DATA/PG_VERSION" ] && return 0
  say "initdb into $DATA"
  as_owner "$bin/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=trust --no-sync >/dev/null
  as_owner mkdir -p "$SOCKETS"
  as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
# iop-bridge test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCKETS'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
}

is_running() {
  local bin
  bin="$(bindir)"
  [ -n "$bin" ] && [ -f "$DATA/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

sql() {
  as_owner "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres \
    -d postgres -tAc "$1"
}

create_role_and_db() {
  if [ -z "$(sql "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")" ]; then
    sql "CREATE ROLE $PG_ROLE LOGIN CREATEDB"
  fi
  if [ -z "$(sql "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]; then
    sql "CREATE DATABASE $PG_DB OWNER $PG_ROLE"
  fi
}

url() {
  echo "postgresql+psycopg://$PG_ROLE@127.0.0.1:$PG_PORT/$PG_DB"
}

start() {
  install_if_missing
  local bin
  bin="$(bindir)"
  prepare_dir
  init_cluster "$bin"
  if is_running; then
    say "already running on 127.0.0.1:$PG_PORT ($DATA)"
  else
    say "starting on 127.0.0.1:$PG_PORT (log: $LOG)"
    as_owner touch "$LOG"
    if ! as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null; then
      say "did not start; last lines of $LOG:"
      tail -n 20 "$LOG" >&2 || true
      exit 1
    fi
  fi
  create_role_and_db
  url
}

stop() {
  if is_running; then
    as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    say "stopped ($DATA)"
  else
    say "not running ($DATA)"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  status) if is_running; then echo running; else echo stopped; exit 3; fi ;;
  *)
    echo "usage: $0 start|stop|url|status" >&2
    exit 2
    ;;
esac
