#!/usr/bin/env bash
# Generates a Python client from openapi.yaml with openapi-python-client (PyPI, pinned in
# tools/client/requirements.txt, installed into ./.venv) and runs the README walkthrough
# with it against a running eventgate. Usage: tools/client/run.sh BASE_URL PLATFORM_KEY
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

base=$1 platform_key=$2
ensure_python_venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r tools/client/requirements.txt
generated=$(mktemp -d /tmp/eventgate-client.XXXXXX)
on_exit "rm -rf '$generated'"
.venv/bin/openapi-python-client generate --path openapi.yaml --meta none \
  --output-path "$generated/eventgate_client" >"$generated/generate.log" 2>&1 || {
  cat "$generated/generate.log" >&2
  exit 1
}
# A schema the generator could not use would leave part of the API out of the client.
if grep -q "Unable to" "$generated/generate.log"; then
  cat "$generated/generate.log" >&2
  log "openapi-python-client could not use every schema of openapi.yaml"
  exit 1
fi
PYTHONPATH="$generated" .venv/bin/python tools/client/walkthrough.py "$base" "$platform_key"
