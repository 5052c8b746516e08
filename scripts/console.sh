#!/usr/bin/env bash
# The console's browser tests: Debian's Chromium (installed when missing) driven by
# Playwright (playwright-core from npm, pinned in tests/console) against a release build
# in zero-config mode (its own fresh PostgreSQL). A local webhook receiver runs in the
# tests. Every test fails on any console error the page shows.
#
#   scripts/console.sh                 run the tests
#   scripts/console.sh --screenshots   the same, saving the pages to docs/console/*.png
#
# test.sh runs it after the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

screenshots=""
if [ "${1:-}" = "--screenshots" ]; then
  screenshots="$PWD/docs/console"
fi

ensure_rust
ensure_node
ensure_chromium
npm ci --prefix tests/console --no-audit --no-fund --loglevel=error >/dev/null
cargo build --release --locked --bin eventgate
pg_bindir >/dev/null

# Webhooks to the tests' receiver on 127.0.0.1; one retry after 1 s, so a failing
# delivery runs out of attempts within the test. No rate limit: several pages poll at once.
start_zero_config_server console \
  EVENTGATE_DESTINATION_ALLOW=127.0.0.1 \
  EVENTGATE_WEBHOOK_RETRY_DELAYS_SECS=1 \
  EVENTGATE_RATE_LIMIT_PER_SEC=0

log "browser tests of the console (Chromium $("${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null | awk '{print $2}'))"
status=0
EVENTGATE_URL="$base" EVENTGATE_PLATFORM_KEY="$platform_key" EVENTGATE_SCREENSHOTS="$screenshots" \
  node --test --test-concurrency=1 --test-reporter=spec tests/console/ || status=$?
if [ "$status" -ne 0 ]; then
  log "console tests failed; the server's log:"
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
