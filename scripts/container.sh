#!/usr/bin/env bash
# Builds eventgate's container image with podman and proves it on this machine: healthy,
# takes a deposit, serves the feed, runs as a non-root user on a read-only root
# filesystem, and stops cleanly on SIGTERM within the grace period; prints the image size.
#
# Public base images cannot be pulled everywhere (not on these development machines), so
# the base is made locally: `debootstrap --variant=minbase bookworm` imported into podman
# (once per machine, about a minute). The binary is compiled by the host's toolchain on the
# same Debian release (BINARY_STAGE=prebuilt); where the rust image can be pulled, `podman
# build .` or `docker build .` compiles inside the image instead.
#
# podman runs with the runc runtime and no default ulimits (crun fails on setrlimit in
# some sandboxes), from a private containers.conf: nothing of the system's is changed.
#
#   scripts/container.sh            build, run the checks, remove the container
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

BASE_IMAGE=localhost/eventgate-base:bookworm
IMAGE=localhost/eventgate:dev
GRACE_SECS=20

for tool in podman debootstrap runc; do
  command -v "$tool" >/dev/null 2>&1 || apt_install podman debootstrap runc
done
ensure_rust

work=$(mktemp -d /tmp/eventgate-container.XXXXXX)
chmod 755 "$work"
on_exit "rm -rf '$work'"
cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"

if ! podman image exists "$BASE_IMAGE"; then
  log "making the base image from Debian bookworm (debootstrap, once per machine)"
  as_root debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" \
    http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  as_root tar -C "$work/rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
  as_root rm -rf "$work/rootfs"
fi

log "building the release binary with the host's toolchain"
cargo build --release --locked --bin eventgate
# The image's copy without debug info (the release build keeps line tables for profiling),
# in a real directory of the build context (target/ may be a link, which podman does not
# follow out of the context).
mkdir -p .container
on_exit "rm -rf '$PWD/.container'"
objcopy --strip-debug target/release/eventgate .container/eventgate
log "building $IMAGE"
podman build --quiet --format docker \
  --build-arg BASE="$BASE_IMAGE" \
  --build-arg BINARY_STAGE=prebuilt \
  --build-arg VERSION="$(cargo pkgid | sed 's/.*[#@]//')" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$IMAGE" . >/dev/null

start_throwaway_pg
port=$(free_port)
platform_key="container-platform-key-$(date +%s%N)"
secrets_key=$(head -c 32 /dev/urandom | base64)
name="eventgate-check-$$"
on_exit "podman rm -f -t 0 $name >/dev/null 2>&1"
log "running $IMAGE read-only against PostgreSQL on 127.0.0.1:$PG_PORT"
podman run -d --name "$name" --network host --read-only \
  -e DATABASE_URL="$DATABASE_URL" \
  -e EVENTGATE_LISTEN="127.0.0.1:$port" \
  -e EVENTGATE_PLATFORM_KEY="$platform_key" \
  -e EVENTGATE_SECRETS_KEY="$secrets_key" \
  "$IMAGE" >/dev/null

base="http://127.0.0.1:$port"
fail() {
  log "FAILED: $*"
  podman logs --tail 40 "$name" >&2 || true
  exit 1
}
for _ in $(seq 1 150); do
  podman exec "$name" /usr/local/bin/eventgate probe >/dev/null 2>&1 && break
  [ "$(podman inspect -f '{{.State.Running}}' "$name")" = true ] || fail "the container exited"
  sleep 0.2
done
podman healthcheck run "$name" >/dev/null || fail "the HEALTHCHECK does not pass"
[ "$(podman inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] || fail "not healthy"
log "healthy (HEALTHCHECK: eventgate probe)"

user=$(podman top "$name" user | tail -n 1 | tr -d ' ')
[ "$user" != root ] && [ "$user" != 0 ] || fail "runs as root"
log "runs as user $user"

python3 - "$base" "$platform_key" <<'PY' || fail "the deposit and feed check"
import json, sys, urllib.request
base, platform = sys.argv[1], sys.argv[2]

def call(method, path, key, body=None, headers=None):
    request = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")

call("POST", "/platform/tenants", platform, {"id": "acme", "name": "Acme Bank"})
_, key = call("POST", "/platform/tenants/acme/keys", platform, {"role": "client"})
client = key["key"]
call("POST", "/platform/events", platform, {"tenant": "acme", "subject": "portfolios", "action": "creation",
    "data": {"id": "P1", "external_id": "x", "owned_by_user_id": "U1"}})
status, deposit = call("POST", "/events/deposit/", client,
    {"data": {"amount": "1000", "currency": "EUR", "portfolio": "P1"}}, {"Idempotency-Key": "container-check-1"})
assert status == 201, status
_, feed = call("GET", "/events/?limit=10", client)
types = [f"{e['subject']}.{e['action']}" for e in feed["data"]]
assert types == ["portfolios.creation", "portfolios.funding"], types
print(f"deposit {deposit['id']} taken; the feed serves {types}")
PY
log "took a deposit and served the feed"

started=$(date +%s.%N)
podman stop -t "$GRACE_SECS" "$name" >/dev/null
elapsed=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)")
code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$elapsed" "$GRACE_SECS" \
  || fail "SIGTERM took ${elapsed}s (grace ${GRACE_SECS}s): it was killed"
log "stopped on SIGTERM in ${elapsed}s with exit code 0"

size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
log "image $IMAGE: $((size / 1000000)) MB"
[ "$size" -lt 100000000 ] || fail "the image is $((size / 1000000)) MB (target: under 100 MB)"
log "container checks passed"
