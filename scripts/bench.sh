#!/usr/bin/env bash
# Benchmarks (not tests): a release eventgate on a throwaway, durable PostgreSQL (default
# settings, fsync on), driven over 127.0.0.1 by benches/load.rs, next to the ceilings
# PostgreSQL itself reaches (pgbench running the same SQL, COPY of the same rows).
# Usage: scripts/bench.sh [deposits|peer|feed|longpoll|relay|kafka|webhooks|all]. Results go to stdout,
# then one summary table (measure, result, ceiling or target, ratio). `all` also writes that
# table into docs/BENCHMARKS.md (between its bench-summary markers). Any unexpected answer
# stops the run with a non-zero exit. EVENTGATE_BIN names another build of the server to
# measure (say, the commit before a change, for an A/B run); by default this checkout's
# release build. BENCH_SERVER_LOG sets the server's log filter (RUST_LOG; default warn), say
# `warn,eventgate::maintenance=info` to see its heap trims. BENCH_PG_STATEMENTS=1 loads
# pg_stat_statements and prints, after each scenario, the statements PostgreSQL ran most
# often during it (calls, mean and total time; for a long-poll round, from the moment all
# wait). Each scenario prints its window, and the run ends with PostgreSQL's checkpoints
# and longer autovacuum runs and the machine's own stalls, to read latency tails against.
# BENCH_LONGPOLL_WAITERS and BENCH_LONGPOLL_TENANTS change the long-poll scenario's size
# (default 5,000 over 50). BENCH_CALLGRIND=DIR runs the server under valgrind's callgrind
# and writes to DIR the instructions the server's own code ran in each long-poll round,
# from the moment all wait to the last answer: a count that does not move with the
# machine's noise, for A/B runs of a change to that path (use about 1,000 waiters over 10
# tenants: under callgrind 5,000 do not all arrive within the scenario's minute).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

what=${1:-all}
ensure_rust
# Only the brokers the chosen scenarios talk to.
case "$what" in
  relay | all) ensure_rabbitmq; ensure_mosquitto ;;
esac
case "$what" in
  kafka | all) ensure_kafka ;;
esac
for tool in curl bc; do command -v "$tool" >/dev/null 2>&1 || apt_install "$tool"; done
if [ -z "${EVENTGATE_BIN:-}" ]; then
  cargo build --release --locked --bin eventgate
  EVENTGATE_BIN=target/release/eventgate
fi
# The load generator's own path too: the long-poll floor runs it as a server of its own.
load_bin=$(cargo bench --locked --bench load --no-run 2>&1 | tee /dev/stderr | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$load_bin" ] || { echo "bench.sh: cannot find the load generator's executable" >&2; exit 1; }
# Checkpoints (logged by default) and autovacuum runs of 100 ms or more are logged, and
# listed at the end beside each scenario's window: a latency tail that coincides with one
# is attributable, one that does not is ours.
pg_settings=(-c log_autovacuum_min_duration=100 -c log_checkpoints=on)
if [ -n "${BENCH_PG_STATEMENTS:-}" ]; then
  pg_settings+=(-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all)
fi
start_throwaway_pg "${pg_settings[@]}"

export EVENTGATE_PLATFORM_KEY=bench-platform-key-0123456789abcdef
# A throwaway key for the secrets this run stores (with DATABASE_URL one is required).
EVENTGATE_SECRETS_KEY=$(head -c 32 /dev/urandom | base64)
export EVENTGATE_SECRETS_KEY
port=$(free_port)
export EVENTGATE_URL="http://127.0.0.1:$port"
# The per-tenant rate limit is off: the benchmarks measure the server's capacity, and the
# load comes from one or a few tenants.
server=("$EVENTGATE_BIN")
if [ -n "${BENCH_CALLGRIND:-}" ]; then
  command -v valgrind >/dev/null 2>&1 || apt_install valgrind
  mkdir -p "$BENCH_CALLGRIND"
  server=(valgrind --tool=callgrind --instr-atstart=no
    --callgrind-out-file="$BENCH_CALLGRIND/callgrind.out.%p" "$EVENTGATE_BIN")
fi
EVENTGATE_RATE_LIMIT_PER_SEC=0 \
EVENTGATE_ALLOW_PRIVATE_DESTINATIONS=true EVENTGATE_LOG_FORMAT=json RUST_LOG="${BENCH_SERVER_LOG:-warn}" "${server[@]}" serve \
  --listen "127.0.0.1:$port" --db-max-connections "${BENCH_DB_CONNECTIONS:-32}" &
server_pid=$!
on_exit "kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null"
for _ in $(seq 1 300); do
  curl -sf "$EVENTGATE_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

results=$(mktemp)
on_exit "rm -f $results"
# The machine's own stalls (a wake-up 20 ms or more late, with the hypervisor's steal),
# listed at the end beside PostgreSQL's background work: a tail that coincides with one
# is the machine's.
stalls=$(mktemp)
on_exit "rm -f $stalls"
python3 scripts/bench/stall_watch.py watch "$stalls" &
stall_watch_pid=$!
on_exit "kill $stall_watch_pid 2>/dev/null"
pg() { "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }
load() {
  if [ -n "${BENCH_PG_STATEMENTS:-}" ]; then pg -c 'SELECT pg_stat_statements_reset()' >/dev/null; fi
  local started
  started=$(date -u +%T.%3N)
  cargo bench --locked --bench load -- "$@" | while IFS= read -r line; do
    printf '%s\n' "$line"
    # A long-poll round's counters start once every waiter waits (its line comes a second
    # before the publishes), so that they hold the wake-up, not the 5,000 arrivals' reads.
    case "$line" in
      *": all "*" waiting after "*)
        if [ -n "${BENCH_PG_STATEMENTS:-}" ]; then pg -c 'SELECT pg_stat_statements_reset()' >/dev/null; fi
        if [ -n "${BENCH_CALLGRIND:-}" ] && [[ $line == "longpoll: "* ]]; then
          callgrind_control -i on "$server_pid" >/dev/null
        fi ;;
      # Off at the round's result, before the clients close their connections.
      "longpoll: "*" waiters over "*)
        if [ -n "${BENCH_CALLGRIND:-}" ]; then
          callgrind_control -i off "$server_pid" >/dev/null
          callgrind_control -d "$server_pid" >/dev/null
          echo "callgrind: this round's instructions are in the newest $BENCH_CALLGRIND/callgrind.out.$server_pid.*"
        fi ;;
    esac
  done | tee -a "$results"
  # Each scenario's window, to read against PostgreSQL's background work at the end.
  echo "window: $* from $started to $(date -u +%T.%3N) UTC"
  if [ -n "${BENCH_PG_STATEMENTS:-}" ]; then
    echo "statements during: $*"
    pg -f scripts/bench/top_statements.sql
  fi
}
if [ -n "${BENCH_PG_STATEMENTS:-}" ]; then pg -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'; fi

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'); $(date -u +%F); scripts/bench.sh $what" | tee -a "$results"

if [ "$what" = deposits ] || [ "$what" = all ]; then
  pg -f scripts/bench/pgbench_setup.sql
  # Not measured: a few seconds of deposits, then ANALYZE, so that this run's statements
  # are planned with statistics, as on a database that has been running (the write
  # function's look-ups no longer depend on them since migration 20261203000013;
  # docs/BENCHMARKS.md, ninth session).
  cargo bench --locked --bench load -- deposits concurrency=32 seconds=5 >/dev/null
  pg -c "VACUUM ANALYZE"
  for clients in 32 128; do
    load deposits concurrency="$clients" seconds=20
    "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c "$clients" -j 2 -T 20 \
      -D portfolios=64 -f scripts/bench/deposit_tx.sql postgres 2>/dev/null | grep -E '^(tps|latency average)' | sed "s/^/pgbench ceiling (clients $clients): /" | tee -a "$results"
  done
  # One hot portfolio: every deposit queues on the same lock.
  load deposits concurrency=32 seconds=20 portfolios=1
  "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c 32 -j 2 -T 20 \
    -D portfolios=1 -f scripts/bench/deposit_tx.sql postgres 2>/dev/null | grep -E '^(tps|latency average)' | sed "s/^/pgbench one-portfolio ceiling (clients 32): /" | tee -a "$results"
  load replays concurrency=32 seconds=10
  "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c 32 -j 2 -T 10 \
    -f scripts/bench/replay_read.sql postgres 2>/dev/null | grep -E '^tps' | sed "s/^/pgbench replay ceiling (clients 32): /" | tee -a "$results"
fi

if [ "$what" = peer ] || [ "$what" = all ]; then
  # Ingest next to svix-server (when SVIX_SERVER_BIN names one), on this PostgreSQL.
  . scripts/bench/peer/run.sh
  ( run_peer ) | tee -a "$results"
fi

# Long-polls before the million-row seed: in one run after it, two of 5,000 waiters reached
# their 30 s wait with no event (the run stopped, as it must); why is not yet known
# (docs/BENCHMARKS.md).
# Before each group of latency measurements, the work the earlier scenarios left to
# PostgreSQL is done first (as the peer scenario does before each of its rounds): the peer
# scenario's million rows otherwise start autovacuums of the outbox and the key table
# that ran inside the long-polls' wake-ups of a complete run (the twenty-second section of
# docs/BENCHMARKS.md), and a measurement that catches one measures PostgreSQL's upkeep.
settle_pg() { pg -c "VACUUM ANALYZE" -c CHECKPOINT; }
if [ "$what" = feed ] || [ "$what" = longpoll ] || [ "$what" = all ]; then
  settle_pg
  # The same scenario also runs against a bare hyper server that only parks and answers (no
  # database, no middleware): what answering 5,000 held requests costs on this machine
  # beside the same clients, the floor eventgate's figure is read against.
  floor_port=$(free_port)
  "$load_bin" longpoll-floor port="$floor_port" >/dev/null &
  floor_pid=$!
  on_exit "kill $floor_pid 2>/dev/null"
  wait_port "$floor_port" longpoll-floor
  # 5,000 waiters over 50 tenants: each tenant stays under the cap of 100 waiting long-polls.
  lp_waiters=${BENCH_LONGPOLL_WAITERS:-5000}
  lp_tenants=${BENCH_LONGPOLL_TENANTS:-50}
  # BENCH_LONGPOLL_ROUNDS wake-ups (default 3) of each, alternating, on the same server: one
  # wake-up's p99 is one draw from a spread of about 30 ms on this machine (eight wake-ups
  # of one build: 94.6-126.0 ms; docs/BENCHMARKS.md, twentieth section), so the summary
  # gives the median with every round's figure, and the largest RSS of the rounds.
  for _ in $(seq 1 "${BENCH_LONGPOLL_ROUNDS:-3}"); do
    load longpoll waiters="$lp_waiters" tenants="$lp_tenants" server_pid="$server_pid"
    EVENTGATE_URL="http://127.0.0.1:$floor_port" load longpoll waiters="$lp_waiters" tenants="$lp_tenants" floor=1 server_pid="$floor_pid"
  done
  kill "$floor_pid" 2>/dev/null || true
fi
if [ "$what" = feed ] || [ "$what" = all ]; then
  load seed-feed events="${BENCH_FEED_EVENTS:-1000000}"
  load follow limit=1000
  rows=$(pg -t -A -c "SELECT count(*) FROM outbox WHERE tenant_id = 'feedbench'")
  # The ceiling is the faster of two plans: PostgreSQL's own choice and the tenant index's
  # order (sorts off). After the other scenarios' events, its own choice can be a sort of
  # the whole tenant, which would make the ceiling low and the ratio flattering.
  best=0
  for settings in "RESET enable_sort" "SET enable_sort = off"; do
    start=$(date +%s.%N)
    pg -c "$settings" -c "\\copy (SELECT envelope FROM outbox WHERE tenant_id = 'feedbench' ORDER BY tx_id, seq) TO '/dev/null'"
    end=$(date +%s.%N)
    rate=$(echo "$rows / ($end - $start)" | bc)
    echo "COPY ($settings): $rows rows in $(echo "$end - $start" | bc -l | cut -c1-5)s = $rate rows/s" | tee -a "$results"
    [ "$rate" -gt "$best" ] && best=$rate
  done
  echo "COPY ceiling: $rows rows, the faster plan: $best rows/s" | tee -a "$results"
fi

if [ "$what" = kafka ] || [ "$what" = all ]; then
  settle_pg
  log "Kafka: relay from a backlog next to a bare producer, then commit-to-consumer latency"
  load kafka-ceiling events=100000
  load relay-backlog kind=kafka events=100000
  load relay-latency kind=kafka rate=1000 seconds=10
fi
if [ "$what" = relay ] || [ "$what" = all ]; then
  settle_pg
  load amqp-ceiling events=100000
  load relay-backlog kind=amqp events=100000
  load relay-backlog kind=mqtt events=100000
  load relay-latency kind=amqp rate=1000 seconds=10
  load relay-latency kind=mqtt rate=1000 seconds=10
  # The same, through a Mosquitto of this run's own with Nagle's algorithm off: with it on
  # (Mosquitto's default) each PUBACK waits for the relay's delayed ACK of the one before
  # (docs/OPERATIONS.md). Both are reported, so the broker's share stays visible.
  mqtt_dir=$(mktemp -d)
  on_exit "rm -rf $mqtt_dir"
  mqtt_port=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n' \
    "$mqtt_port" > "$mqtt_dir/mosquitto.conf"
  mosquitto -c "$mqtt_dir/mosquitto.conf" >"$mqtt_dir/log" 2>&1 &
  mqtt_pid=$!
  on_exit "kill $mqtt_pid 2>/dev/null"
  wait_port "$mqtt_port" "Mosquitto (set_tcp_nodelay)"
  started=$(date -u +%T.%3N)
  BENCH_MQTT_PORT=$mqtt_port cargo bench --locked --bench load -- relay-latency kind=mqtt rate=1000 seconds=10 \
    | sed 's/^relay-latency mqtt:/relay-latency mqtt-nodelay:/' | tee -a "$results"
  echo "window: relay-latency kind=mqtt (set_tcp_nodelay) from $started to $(date -u +%T.%3N) UTC"
fi

if [ "$what" = webhooks ] || [ "$what" = all ]; then
  settle_pg
  load webhook-backlog events=50000
  load webhook-latency rate=500 seconds=10
fi

echo
echo "PostgreSQL's background work during the run (UTC):"
python3 scripts/bench/pg_background.py "$PG_DATA/server.log"
echo "The machine's stalls during the run (UTC; scripts/bench/stall_watch.py):"
python3 scripts/bench/stall_watch.py list "$stalls"
echo
log "summary"
if [ "$what" = all ]; then
  python3 scripts/bench/summary.py "$results" --doc docs/BENCHMARKS.md
else
  python3 scripts/bench/summary.py "$results"
fi
