#!/usr/bin/env bash
# Start a PostgreSQL server for the shared-state tests (tests/test_postgres*.py) and
# print the URL to export as METASEARCH_TEST_POSTGRES. PostgreSQL refuses to run as
# root, so the server runs as the `postgres` OS user. Idempotent: a server already
# answering on the port is reused; the role and database are created when missing.
#   export METASEARCH_TEST_POSTGRES="$(bash .ci/postgres.sh)"
set -euo pipefail
PORT="${PGPORT:-5432}"
DATA="${METASEARCH_PGDATA:-/var/lib/postgresql/metasearch-test}"
bindir() {
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  dirname "$(command -v initdb)"
}
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
BIN="$(bindir)"
id postgres >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/postgresql postgres
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
ours() { [ -f "$DATA/postmaster.pid" ] && [ "$(sed -n 4p "$DATA/postmaster.pid")" = "$PORT" ]; }
# A server on the port that is not ours (Debian's own cluster, say) wants a password we do
# not have: take the next free port instead.
while "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && ! ours; do PORT=$((PORT + 1)); done
if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA" && chown postgres: "$DATA" && chmod 700 "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
  fi
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -c max_connections=200 -k /tmp" start >/dev/null
fi
psql_() { psql -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ -z "$(psql_ -c "SELECT 1 FROM pg_roles WHERE rolname='metasearch'")" ]; then
  psql_ -c "CREATE ROLE metasearch LOGIN PASSWORD 'metasearch'"
fi
if [ -z "$(psql_ -c "SELECT 1 FROM pg_database WHERE datname='metasearch_test'")" ]; then
  psql_ -c "CREATE DATABASE metasearch_test OWNER metasearch"
fi
echo "postgresql+psycopg://metasearch:metasearch@127.0.0.1:$PORT/metasearch_test"
