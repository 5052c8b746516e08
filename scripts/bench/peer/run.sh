#!/usr/bin/env bash
# The `peer` scenario of scripts/bench.sh: ingest next to svix-server, measured side by side
# in one run. Sourced by bench.sh after it started eventgate on its throwaway PostgreSQL;
# uses its EVENTGATE_URL, EVENTGATE_PLATFORM_KEY, PG_PORT, pg() and load helpers.
#
# svix-server is not part of this repository, and this repository does not build it: set
# SVIX_SERVER_BIN to a svix-server binary (measured: 1.100.0), or the scenario says so and
# is skipped. It runs on the same PostgreSQL (its own database) with Redis for its queue
# and cache, as its documentation deploys it.
#
# Each measurement is `wrk` for PEER_SECONDS (default 20) at 32 and 128 connections, a
# unique Idempotency-Key per request, the servers alternating (never loaded at once), in
# PEER_ROUNDS rounds (default 3; the summary compares medians). It
# prints one line per measurement, with the requests per second, latency, and the CPU the
# server and PostgreSQL used (% of one core). Any non-2xx answer or socket error stops
# the run.

peer_cpu_ticks() { # the user+system clock ticks of processes $@
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

peer_pg_ticks() { # the throwaway cluster's CPU: the postmaster with its reaped children,
  # and its live ones (a backend that exits moves its ticks into the postmaster's count)
  local postmaster
  postmaster=$(head -1 "$PG_DATA/postmaster.pid")
  echo $(( $(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat") + \
           $(peer_cpu_ticks $(pgrep -P "$postmaster")) ))
}

# peer_measure LABEL SERVER_PID URL PATH BODY_FILE TOKEN PORTFOLIOS CONNECTIONS
peer_measure() {
  local label=$1 server=$2 url=$3 path=$4 body=$5 token=$6 portfolios=$7 connections=$8
  local hz out server0 pg0 started ended
  hz=$(getconf CLK_TCK)
  out=$(mktemp)
  server0=$(peer_cpu_ticks "$server")
  pg0=$(peer_pg_ticks)
  started=$(date +%s.%N)
  URL_PATH=$path BODY_FILE=$body AUTH=$token PORTFOLIOS=$portfolios \
    KEY_PREFIX="$label-$connections-$(date +%s%N)" \
    wrk -t2 -c"$connections" -d"${PEER_SECONDS:-20}s" --timeout 10s \
    -s scripts/bench/peer/post.lua "$url" >"$out" 2>&1
  ended=$(date +%s.%N)
  local server1 pg1
  server1=$(peer_cpu_ticks "$server")
  pg1=$(peer_pg_ticks)
  python3 - "$out" "$label" "$connections" "$hz" "$started" "$ended" \
    "$server0" "$server1" "$pg0" "$pg1" <<'PY'
import json, sys
out, label, connections, hz, started, ended, s0, s1, p0, p1 = sys.argv[1:]
text = open(out).read()
lines = [l for l in text.splitlines() if l.startswith("RESULT ")]
if not lines:
    sys.exit(f"{label}: wrk printed no result:\n{text}")
r = json.loads(lines[0][len("RESULT "):])
if r["non_2xx"] or r["socket_errors"]:
    sys.exit(f"{label} (c{connections}): {r['non_2xx']} non-2xx answers and "
             f"{r['socket_errors']} socket errors: a rate of refusals is no rate\n{text}")
wall = float(ended) - float(started)
cpu = lambda a, b: 100 * (int(b) - int(a)) / int(hz) / wall
print(f"peer {label} (c{connections}): {r['requests'] / r['seconds']:.0f}/s; "
      f"latency p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; "
      f"server CPU {cpu(s0, s1):.0f}%, PostgreSQL CPU {cpu(p0, p1):.0f}% of a core")
PY
  local status=$?
  rm -f "$out"
  return $status
}

peer_ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  log "starting Redis on 127.0.0.1:6379 (svix-server's queue and cache)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --logfile /tmp/eventgate-bench-redis.log
  wait_port 6379 Redis
}

# Runs in a subshell of its own (`( run_peer ) | tee`): its clean-up is its EXIT trap, so
# it must not touch bench.sh's (on_exit would run all of bench.sh's commands here).
run_peer() {
  if [ -z "${SVIX_SERVER_BIN:-}" ] || [ ! -x "$SVIX_SERVER_BIN" ]; then
    echo "peer: skipped: SVIX_SERVER_BIN does not name a svix-server binary (it is not part of this repository; docs/BENCHMARKS.md)"
    return 0
  fi
  command -v wrk >/dev/null 2>&1 || apt_install wrk
  peer_ensure_redis
  # Globals, not locals: the trap runs after this function has returned.
  PEER_SVIX_PID=""
  PEER_DIR=$(mktemp -d)
  trap 'kill $PEER_SVIX_PID 2>/dev/null; rm -rf "$PEER_DIR"' EXIT
  local dir=$PEER_DIR

  # svix-server on its own database of the same PostgreSQL.
  pg -c "DROP DATABASE IF EXISTS svixbench" -c "CREATE DATABASE svixbench"
  local svix_port
  svix_port=$(free_port)
  export SVIX_DB_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/svixbench"
  export SVIX_REDIS_DSN=redis://127.0.0.1:6379 SVIX_QUEUE_TYPE=redis SVIX_CACHE_TYPE=redis
  SVIX_JWT_SECRET=$(head -c 24 /dev/urandom | base64)
  SVIX_MAIN_SECRET=$(head -c 24 /dev/urandom | base64)
  export SVIX_JWT_SECRET SVIX_MAIN_SECRET
  export SVIX_LISTEN_ADDRESS="127.0.0.1:$svix_port" SVIX_WHITELIST_SUBNETS="[127.0.0.0/8]"
  export SVIX_ENDPOINT_HTTPS_ONLY=false SVIX_LOG_FORMAT=json
  # The same pool size as eventgate's: both servers share the database.
  export SVIX_DB_POOL_MAX_SIZE="${BENCH_DB_CONNECTIONS:-32}"
  RUST_LOG=warn "$SVIX_SERVER_BIN" --run-migrations >"$dir/svix.log" 2>&1 &
  PEER_SVIX_PID=$!
  local svix_pid=$PEER_SVIX_PID
  wait_port "$svix_port" svix-server
  local svix_token svix_url="http://127.0.0.1:$svix_port"
  svix_token=$(RUST_LOG=error "$SVIX_SERVER_BIN" jwt generate | awk '/Token/ {print $NF}')
  curl -sf -X POST "$svix_url/api/v1/app/" -H "Authorization: Bearer $svix_token" \
    -H 'Content-Type: application/json' -d '{"name": "bench", "uid": "bench"}' >/dev/null

  # eventgate: a tenant with a client key and 64 portfolios.
  local platform=$EVENTGATE_PLATFORM_KEY tenant=peer client_key p
  curl -sf -X POST "$EVENTGATE_URL/platform/tenants" -H "Authorization: Bearer $platform" \
    -H 'Content-Type: application/json' -d "{\"id\": \"$tenant\", \"name\": \"$tenant\"}" >/dev/null
  client_key=$(curl -sf -X POST "$EVENTGATE_URL/platform/tenants/$tenant/keys" \
    -H "Authorization: Bearer $platform" -H 'Content-Type: application/json' \
    -d '{"role": "client"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  for p in $(seq 0 63); do
    curl -sf -X POST "$EVENTGATE_URL/platform/events" -H "Authorization: Bearer $platform" \
      -H 'Content-Type: application/json' \
      -d "{\"tenant\": \"$tenant\", \"subject\": \"portfolios\", \"action\": \"creation\", \"data\": {\"id\": \"P$p\", \"external_id\": \"P$p\", \"owned_by_user_id\": \"U1\"}}" >/dev/null
  done

  # The same portfolios.status-update envelope through both (svix carries it as payload).
  local external
  external="ext-$(printf 'a%.0s' $(seq 1 150))"
  printf '{"eventType": "portfolios.status-update", "payload": {"id": "01a20620-e70f-73be-85f5-b32602413f43", "created": "2026-12-02T00:00:00.000000Z", "version": "1.0.0", "subject": "portfolios", "action": "status-update", "data": {"id": "P0", "external_id": "%s", "value": "ACTIVE"}}}\n' "$external" >"$dir/svix.json"
  printf '{"tenant": "%s", "subject": "portfolios", "action": "status-update", "data": {"id": "@PORTFOLIO@", "external_id": "%s", "value": "ACTIVE"}}\n' "$tenant" "$external" >"$dir/publish.json"
  printf '{"data": {"amount": "1000", "currency": "USD", "portfolio": "@PORTFOLIO@"}}\n' >"$dir/deposit.json"

  # Warm both up (pools opened, caches filled); not measured.
  PEER_SECONDS=5 peer_measure "svix-server warm-up" "$svix_pid" "$svix_url" /api/v1/app/bench/msg/ "$dir/svix.json" "$svix_token" 0 32 >/dev/null
  PEER_SECONDS=5 peer_measure "eventgate warm-up" "$server_pid" "$EVENTGATE_URL" /platform/events "$dir/publish.json" "$platform" 64 32 >/dev/null

  # PEER_ROUNDS rounds (default 3) of every measurement, the servers alternating: one run
  # of either can catch a checkpoint or an autovacuum, so the summary compares medians.
  local connections round
  for connections in 32 128; do
    for round in $(seq 1 "${PEER_ROUNDS:-3}"); do
      "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d svixbench -c "VACUUM ANALYZE"
      pg -c "VACUUM ANALYZE"
      peer_measure "svix-server msg" "$svix_pid" "$svix_url" /api/v1/app/bench/msg/ "$dir/svix.json" "$svix_token" 0 "$connections"
      peer_measure "eventgate publish, 64 portfolios" "$server_pid" "$EVENTGATE_URL" /platform/events "$dir/publish.json" "$platform" 64 "$connections"
      peer_measure "eventgate deposit, 64 portfolios" "$server_pid" "$EVENTGATE_URL" /events/deposit/ "$dir/deposit.json" "$client_key" 64 "$connections"
      peer_measure "eventgate publish, 1 portfolio" "$server_pid" "$EVENTGATE_URL" /platform/events "$dir/publish.json" "$platform" 1 "$connections"
      peer_measure "eventgate deposit, 1 portfolio" "$server_pid" "$EVENTGATE_URL" /events/deposit/ "$dir/deposit.json" "$client_key" 1 "$connections"
    done
  done
}
