#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (Debian), starts a throwaway
# PostgreSQL cluster for the tests (trust auth, 127.0.0.1, a free port, fsync off), runs
# every test against it, and removes it afterwards. Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
bindir=$(pg_bindir)

cluster=$(mktemp -d /tmp/eventgate-test-pg.XXXXXX)
chmod 755 "$cluster"
pgdata="$cluster/data"
mkdir -p "$pgdata"
[ "$(id -u)" = 0 ] && chown postgres: "$pgdata"
cleanup() {
  pg_run "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$cluster"
}
trap cleanup EXIT

log "starting a throwaway PostgreSQL ($bindir) in $pgdata"
pg_run "$bindir/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
port=$(free_port)
pg_run "$bindir/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 \
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
