#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (Debian), starts RabbitMQ and
# Mosquitto if they are not running, starts a throwaway PostgreSQL cluster for the tests
# (fsync off: durability is not under test there), runs every test against them (each test
# gets its own fresh database), and removes the cluster.
# Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_rabbitmq
ensure_mosquitto
start_throwaway_pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
