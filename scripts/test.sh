#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (Debian; tansu from crates.io),
# starts RabbitMQ, Mosquitto and a Kafka-protocol broker (tansu) if they are not running,
# starts a throwaway PostgreSQL cluster for the tests (fsync off: durability is not under
# test there), builds the release binary (the fault tests run it as real processes), runs
# every test against them (each test gets its own fresh database; the database- and
# broker-restart tests start private instances), then scripts/contract.sh (schemathesis
# against openapi.yaml, the AsyncAPI check), scripts/console.sh (the console in Debian's
# Chromium), scripts/helm-check.sh (the Helm chart, rendered and schema-checked) and
# scripts/container.sh (the image, built with podman and run), and removes the cluster.
# Extra arguments go to the test runner and select tests; those four runs are then left out.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_rabbitmq
ensure_mosquitto
ensure_kafka
# An independent ed25519 verifier (PyNaCl) for the asymmetric signature tests.
ensure_python_venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r tools/verifiers/requirements.txt
start_throwaway_pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off

# Tests that run eventgate as a real process (fault suite, zero-config) use the release
# build, as it ships; set EVENTGATE_BIN yourself to run another build.
if [ -z "${EVENTGATE_BIN:-}" ]; then
  log "building the release binary for the tests that run eventgate as a process"
  cargo build --release --locked --bin eventgate
  export EVENTGATE_BIN="$PWD/target/release/eventgate"
fi

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@" || status=$?
else
  cargo test --no-fail-fast "$@" || status=$?
fi

# The whole suite also proves the contracts against a running release build; a filtered
# run (arguments given) is for iterating on some tests and leaves that out.
if [ $# -eq 0 ]; then
  scripts/contract.sh || status=$?
  scripts/console.sh || status=$?
  scripts/helm-check.sh || status=$?
  scripts/container.sh || status=$?
else
  log "arguments given: not running scripts/contract.sh, console.sh, helm-check.sh and container.sh (run them alone, or test.sh without arguments)"
fi
exit "$status"
