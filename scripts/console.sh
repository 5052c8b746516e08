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

work=$(mktemp -d /tmp/eventgate-console.XXXXXX)
chmod 755 "$work"
port=$(free_port)
platform_key="console-platform-key-$(date +%s%N)"
# Webhooks to the tests' receiver on 127.0.0.1; one retry after 1 s, so a failing
# delivery runs out of attempts within the test. No rate limit: several pages poll at once.
env -u DATABASE_URL \
  EVENTGATE_LISTEN="127.0.0.1:$port" \
  EVENTGATE_DATA_DIR="$work/data" \
  EVENTGATE_PLATFORM_KEY="$platform_key" \
  EVENTGATE_DESTINATION_ALLOW=127.0.0.1 \
  EVENTGATE_WEBHOOK_RETRY_DELAYS_SECS=1 \
  EVENTGATE_RATE_LIMIT_PER_SEC=0 \
  RUST_LOG=warn \
  target/release/eventgate serve >"$work/server.log" 2>&1 &
server=$!
on_exit "kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf '$work'"

base="http://127.0.0.1:$port"
ready() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/readyz" 2>/dev/null; }
for _ in $(seq 1 300); do
  ready && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
ready || { log "the server did not become ready"; tail -n 50 "$work/server.log" >&2; exit 1; }

log "browser tests of the console (Chromium $("${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null | awk '{print $2}'))"
status=0
EVENTGATE_URL="$base" EVENTGATE_PLATFORM_KEY="$platform_key" EVENTGATE_SCREENSHOTS="$screenshots" \
  node --test --test-concurrency=1 --test-reporter=spec tests/console/ || status=$?
if [ "$status" -ne 0 ]; then
  log "console tests failed; the server's log:"
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
