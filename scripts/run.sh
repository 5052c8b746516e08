#!/usr/bin/env bash
# Runs the server in zero-config mode: installs PostgreSQL's server binaries if they are
# missing (Debian), builds a release binary, and starts `eventgate serve`, which keeps its
# own private PostgreSQL cluster in ./.eventgate. Extra arguments go to `eventgate serve`
# (see `--help`); set DATABASE_URL to use an existing server instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
if [ -z "${DATABASE_URL:-}" ]; then
  pg_bindir >/dev/null
fi
exec cargo run --release --locked -- serve "$@"
