# Shared shell helpers: install what is missing (Debian), find PostgreSQL, run as the
# service user when root. Sourced by scripts/*.sh.

log() { printf '[eventgate] %s\n' "$*" >&2; }

# Cleanup commands run once when the script ends, however it ends (a TERM or INT from
# `timeout` or Ctrl-C included: without the TERM/INT traps bash would skip the EXIT trap).
exit_commands=()
# Last registered, first run: what started later (a server) may need what started earlier
# (its PostgreSQL) while it stops.
run_exit_commands() {
  local i
  for ((i = ${#exit_commands[@]} - 1; i >= 0; i--)); do eval "${exit_commands[$i]}" || true; done
  exit_commands=()
}
on_exit() {
  exit_commands+=("$1")
  trap run_exit_commands EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "cannot install $* (no apt-get); install it by hand"
    return 1
  fi
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Prints the directory holding initdb/pg_ctl/postgres, installing PostgreSQL if absent.
pg_bindir() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null)" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr); do
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
  log "PostgreSQL server binaries not found; installing the postgresql package"
  apt_install postgresql >&2 || return 1
  ls -d /usr/lib/postgresql/*/bin | sort -Vr | head -n 1
}

# Runs a PostgreSQL tool as the `postgres` user when we are root (initdb refuses root).
pg_run() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install Rust (rustup) first"
    return 1
  fi
  command -v cc >/dev/null 2>&1 || apt_install build-essential
  command -v python3 >/dev/null 2>&1 || apt_install python3
}

# Starts a throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, a free port) and exports
# DATABASE_URL, PG_BINDIR, PG_PORT and PG_DATA. Extra arguments are server options
# ("-c name=value ..."). The cluster is stopped and removed when the calling shell exits.
start_throwaway_pg() {
  PG_BINDIR=$(pg_bindir)
  local cluster
  cluster=$(mktemp -d /tmp/eventgate-pg.XXXXXX)
  chmod 755 "$cluster"
  PG_DATA="$cluster/data"
  mkdir -p "$PG_DATA"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
  on_exit "pg_run '$PG_BINDIR/pg_ctl' -D '$PG_DATA' -m immediate -w stop >/dev/null 2>&1; rm -rf '$cluster'"
  log "starting a throwaway PostgreSQL ($PG_BINDIR) in $PG_DATA"
  pg_run "$PG_BINDIR/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
  PG_PORT=$(free_port)
  pg_run "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300 $*" \
    start >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  export PG_BINDIR PG_PORT PG_DATA
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 180); do
    port_open "$port" && return 0
    sleep 1
  done
  log "$name did not start listening on 127.0.0.1:$port"
  return 1
}

# RabbitMQ on 127.0.0.1:5672 (guest/guest), installed and started if absent.
ensure_rabbitmq() {
  # The broker-outage test starts a private node from these binaries even when a broker
  # already listens on 5672, so they must be here either way.
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  port_open 5672 && return 0
  log "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 RabbitMQ
}

# Mosquitto on 127.0.0.1:1883, installed and started if absent.
ensure_mosquitto() {
  # The broker TLS test starts a private Mosquitto from this binary even when one already
  # listens on 1883, so it must be here either way.
  command -v mosquitto >/dev/null 2>&1 || apt_install mosquitto
  port_open 1883 && return 0
  log "starting Mosquitto"
  local conf=/etc/mosquitto/mosquitto.conf
  if [ -f "$conf" ]; then mosquitto -d -c "$conf"; else mosquitto -d -p 1883; fi
  wait_port 1883 Mosquitto
}

# tansu, a Kafka-protocol broker from crates.io (Debian has no Kafka, and nothing but the
# package registries can be downloaded). Installed once per machine into cargo's bin
# directory, which is its cache: the build takes 10-25 minutes on 2 cores.
TANSU_VERSION=0.6.0
ensure_tansu() {
  command -v tansu >/dev/null 2>&1 && return 0
  log "installing tansu $TANSU_VERSION (Kafka-protocol broker; once per machine, 10-25 min on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore
}

# A Kafka-protocol broker on 127.0.0.1:19092 (tansu, records in memory), started if absent.
KAFKA_PORT=19092
ensure_kafka() {
  ensure_tansu
  port_open "$KAFKA_PORT" && return 0
  log "starting tansu (Kafka protocol) on 127.0.0.1:$KAFKA_PORT, records in memory"
  setsid nohup tansu broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ >/tmp/eventgate-tansu.log 2>&1 < /dev/null &
  wait_port "$KAFKA_PORT" tansu
}

# Node.js and npm (for the AsyncAPI parser), installed if absent.
ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
  apt_install nodejs npm
}

# A Python virtualenv in ./.venv (Debian splits venv into python3-venv).
ensure_python_venv() {
  [ -x .venv/bin/python ] && return 0
  if ! python3 -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    python3 -m venv .venv
  fi
}

# Debian's Chromium for the console's browser tests (no browser is downloaded from
# anywhere else).
ensure_chromium() {
  [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && return 0
  log "installing Debian's chromium for the browser tests"
  apt_install chromium chromium-driver
}

# Starts target/release/eventgate in zero-config mode (its own fresh PostgreSQL in a
# temporary directory) on a free port with a fresh platform key, plus any VAR=VALUE
# settings given, and waits until it is ready. Sets `work` (its directory; the log is
# $work/server.log), `base` (its URL), `platform_key` and `server` (its pid); stops it and
# removes the directory when the script ends.
start_zero_config_server() {
  local name=$1
  shift
  work=$(mktemp -d "/tmp/eventgate-$name.XXXXXX")
  chmod 755 "$work"
  local port
  port=$(free_port)
  platform_key="$name-platform-key-$(date +%s%N)"
  env -u DATABASE_URL \
    EVENTGATE_LISTEN="127.0.0.1:$port" \
    EVENTGATE_DATA_DIR="$work/data" \
    EVENTGATE_PLATFORM_KEY="$platform_key" \
    RUST_LOG=warn \
    "$@" \
    target/release/eventgate serve >"$work/server.log" 2>&1 &
  server=$!
  on_exit "kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf '$work'"
  base="http://127.0.0.1:$port"
  local _
  for _ in $(seq 1 300); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$base/readyz" 2>/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  log "the $name server did not become ready; its log:"
  tail -n 50 "$work/server.log" >&2
  return 1
}
