#!/usr/bin/env bash
# Proves the server matches its published contracts:
# - openapi.yaml is the document the code generates (`eventgate openapi --check`);
# - asyncapi.yaml: validated by the AsyncAPI parser (npm, pinned in tools/asyncapi), and
#   every type of the served catalogue must be in it with exactly the served data schema;
# - openapi.yaml: schemathesis (PyPI, pinned in tools/schemathesis, installed into ./.venv)
#   runs every check it has (--checks all, stateful links included) against a release
#   build in zero-config mode (its own fresh PostgreSQL) with a seeded tenant, once with a
#   client key and once with the platform key: 0 failures required;
# - a Python client generated from openapi.yaml (openapi-python-client, PyPI) runs the
#   README walkthrough (tools/client/walkthrough.py).
# Any failure fails the script. test.sh runs it after the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust

ensure_node
npm ci --prefix tools/asyncapi --no-audit --no-fund --loglevel=error >/dev/null
log "installing schemathesis"
ensure_python_venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r tools/schemathesis/requirements.txt

cargo build --release --locked --bin eventgate
pg_bindir >/dev/null

log "checking openapi.yaml is the document the code generates"
target/release/eventgate openapi --check openapi.yaml

# The rate limit is off: the fuzzer's burst would otherwise be mostly 429s (documented,
# so not failures, but nothing else would be exercised); tests/api/operations.rs covers it.
# The relay is off and private addresses are allowed: the fuzzer makes destinations with
# any host its patterns allow, and this run must neither connect to them nor depend on DNS
# (the address guard has tests of its own).
start_zero_config_server contract \
  EVENTGATE_RATE_LIMIT_PER_SEC=0 \
  EVENTGATE_RELAY=false \
  EVENTGATE_ALLOW_PRIVATE_DESTINATIONS=true
client_key=$(python3 scripts/contract_seed.py "$base" "$platform_key" "$work/catalogue.json")

log "validating asyncapi.yaml against the served catalogue"
node tools/asyncapi/validate.mjs asyncapi.yaml "$work/catalogue.json"

# Long-polls may hold an answer 30 s (documented): the response time limit sits above.
run_schemathesis() {
  local who=$1 key=$2
  log "schemathesis as the $who (every check)"
  if ! EVENTGATE_CONTRACT_KEY="$key" SCHEMATHESIS_HOOKS=tools.schemathesis.hooks \
      .venv/bin/schemathesis --config-file tools/schemathesis/schemathesis.toml run openapi.yaml \
      --url "$base" \
      --checks all \
      --max-examples "${EVENTGATE_CONTRACT_EXAMPLES:-30}" \
      --seed 1 \
      --generation-database none \
      --request-timeout 40 \
      --max-response-time 35 \
      --no-color; then
    log "schemathesis found failures as the $who; server log: $work/server.log"
    tail -n 50 "$work/server.log" >&2
    return 1
  fi
}

run_schemathesis client "$client_key"
run_schemathesis platform "$platform_key"

log "a client generated from openapi.yaml runs the README walkthrough"
tools/client/run.sh "$base" "$platform_key"
log "contracts hold"
