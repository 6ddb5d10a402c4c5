#!/usr/bin/env bash
# CI check of the Docker image: build it, run it, and load the dashboard from the container in
# headless Chromium.
#
# No container registry is reachable here, so the script makes its own base image: Debian
# bookworm (python3 3.11) by debootstrap, plus this host's CA bundle and pip configuration so
# that pip inside the build can verify TLS. Those host files go into the CI-made base image only,
# never into the Dockerfile users build.
#
# A private dockerd (own data root, exec root and socket) is started for the run and stopped by
# PID on exit. Its data root (image layers: the dependency layer of the build is reused while
# pyproject.toml is unchanged) and the debootstrap tarball are kept in $NBODY_CI_CACHE (default
# /var/cache/nbody-ci) between runs; both are only caches: a missing or unusable one is
# rebuilt from scratch. Needs root and Debian apt. Usage: bash scripts/ci_docker.sh  (PYTHON=venv python
# with playwright and pytest installed; default: python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
CACHE_DIR="${NBODY_CI_CACHE:-/var/cache/nbody-ci}"
BASE_TARBALL="$CACHE_DIR/bookworm-py-minbase.tar"
IMAGE="nbody-explorer:ci"
BASE_IMAGE="local/bookworm-py"
START_ALL=$SECONDS

log() { printf '[ci_docker %4ds] %s\n' "$((SECONDS - START_ALL))" "$*"; }
die() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (apt-get, dockerd)"

# ---------------------------------------------------------------- packages
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The client from the same package as dockerd (another `docker` earlier on PATH may be newer).
DOCKER_BIN="$(dirname "$(command -v dockerd)")/../bin/docker"
[ -x "$DOCKER_BIN" ] || DOCKER_BIN="$(command -v docker)"

# ---------------------------------------------------------------- private dockerd
WORK="$(mktemp -d /tmp/nbody-docker.XXXXXX)"
export DOCKER_HOST="unix://$WORK/docker.sock"
export DOCKER_BUILDKIT=0  # legacy builder: no buildx plugin needed
DOCKERD_PID=""
CONTAINER=""

cleanup() {
    local status=$?
    set +e
    if [ -n "$CONTAINER" ]; then
        if [ "$status" != 0 ]; then
            log "container logs (last 60 lines):"
            "$DOCKER_BIN" logs --tail 60 "$CONTAINER" 2>&1 | sed 's/^/    /'
        fi
        "$DOCKER_BIN" rm -f "$CONTAINER" >/dev/null 2>&1
    fi
    if [ -n "$DOCKERD_PID" ]; then
        # Untagged images of earlier runs: keep the cache to what this run's image uses.
        "$DOCKER_BIN" image prune -f >/dev/null 2>&1
        stop_dockerd
    fi
    if [ "$status" != 0 ] && [ -f "$WORK/dockerd.log" ]; then
        log "dockerd log (last 30 lines):"
        tail -n 30 "$WORK/dockerd.log" | sed 's/^/    /'
    fi
    # Anything dockerd left mounted under WORK must go before the directory is removed.
    awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m"
    done
    rm -rf "$WORK"
    log "docker step finished with status $status after $((SECONDS - START_ALL)) s"
    exit "$status"
}
trap cleanup EXIT

DATA_ROOT="$CACHE_DIR/docker-data"

start_dockerd() {
    log "starting dockerd (data root $DATA_ROOT)"
    mkdir -p "$DATA_ROOT"
    dockerd --data-root "$DATA_ROOT" --exec-root "$WORK/exec" --pidfile "$WORK/docker.pid" \
        --host "$DOCKER_HOST" >>"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 120); do
        "$DOCKER_BIN" version >/dev/null 2>&1 && return 0
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 0.5
    done
    return 1
}

stop_dockerd() {
    [ -n "$DOCKERD_PID" ] || return 0
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 1 60); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            log "dockerd did not stop in 30 s; killing PID $DOCKERD_PID"
            kill -KILL "$DOCKERD_PID"
        fi
    fi
    wait "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=""
}

if ! start_dockerd; then
    # The cached data root is only a cache: start over with an empty one.
    log "dockerd did not start on the cached data root; retrying with a fresh one"
    tail -n 5 "$WORK/dockerd.log" | sed 's/^/    /'
    stop_dockerd
    rm -rf "$DATA_ROOT"
    start_dockerd || die "dockerd did not start"
fi
# Leftovers of an interrupted earlier run.
stale="$("$DOCKER_BIN" ps -aq --filter label=nbody-ci)"
if [ -n "$stale" ]; then "$DOCKER_BIN" rm -f $stale >/dev/null; fi

# ---------------------------------------------------------------- base image
# The Debian mirror debootstrap uses: the first enabled, non-security "deb" source of this
# machine's own apt configuration (deb822 *.sources stanzas first, then one-line
# sources.list / *.list entries). No mirror host is written in this repository: with none
# configured the check stops with a message saying so. APT_ETC (default /etc/apt) lets the
# lookup be tried on another configuration.
apt_mirror() {
    local uri="" sources=() lists=()
    shopt -s nullglob
    sources=("${APT_ETC:-/etc/apt}"/sources.list.d/*.sources)
    lists=("${APT_ETC:-/etc/apt}"/sources.list "${APT_ETC:-/etc/apt}"/sources.list.d/*.list)
    shopt -u nullglob
    if [ "${#sources[@]}" -gt 0 ]; then
        # Paragraph mode: one deb822 stanza per record; field names are case-insensitive.
        uri="$(awk 'BEGIN { RS = "" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                n = split($0, lines, "\n")
                for (i = 1; i <= n; i++) {
                    line = lines[i]
                    if (line ~ /^[ \t]*#/ || index(line, ":") == 0) continue
                    key = tolower(substr(line, 1, index(line, ":") - 1))
                    value = substr(line, index(line, ":") + 1)
                    gsub(/^[ \t]+|[ \t]+$/, "", value)
                    if (key == "types") types = value
                    else if (key == "uris") uris = value
                    else if (key == "suites") suites = value
                    else if (key == "enabled") enabled = tolower(value)
                }
                split(uris, first, /[ \t]+/)
                if (enabled != "no" && (" " types " ") ~ / deb / && first[1] != "" \
                    && first[1] !~ /security/ && suites !~ /-security/) { print first[1]; exit }
            }' "${sources[@]}" 2>/dev/null || true)"
    fi
    if [ -z "$uri" ] && [ "${#lists[@]}" -gt 0 ]; then
        uri="$(grep -hE '^[[:space:]]*deb[[:space:]]' "${lists[@]}" 2>/dev/null \
            | sed -E 's/\[[^]]*\]//' | awk '$2 !~ /security/ && $3 !~ /-security/ { print $2; exit }' || true)"
    fi
    [ -n "$uri" ] || return 1
    echo "$uri"
}

make_base_tarball() {
    local rootfs="$WORK/rootfs" mirror
    mirror="$(apt_mirror)" || die "no Debian mirror is configured in this machine's apt sources \
(/etc/apt/sources.list, /etc/apt/sources.list.d/*.list or deb822 *.sources): debootstrap needs one \
to build the base image; add this machine's mirror to its apt configuration and rerun"
    log "debootstrap bookworm from $mirror (minbase + python3)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    mkdir -p "$CACHE_DIR"
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TARBALL.tmp.$$" .
    mv "$BASE_TARBALL.tmp.$$" "$BASE_TARBALL"
    rm -rf "$rootfs"
}

import_base() {
    "$DOCKER_BIN" import "$BASE_TARBALL" local/bookworm-py-minbase >/dev/null
}

T=$SECONDS
if "$DOCKER_BIN" image inspect local/bookworm-py-minbase >/dev/null 2>&1; then
    log "base image local/bookworm-py-minbase already in the cached data root"
elif [ -s "$BASE_TARBALL" ] && import_base 2>"$WORK/import.log"; then
    log "base tarball from cache $BASE_TARBALL"
else
    [ -s "$BASE_TARBALL" ] && log "cached base tarball unusable ($(head -c 200 "$WORK/import.log")); rebuilding"
    rm -f "$BASE_TARBALL"
    make_base_tarball
    import_base
fi

# CI-only layer: this host's CA bundle and pip configuration (TLS through this network).
mkdir -p "$WORK/base-context/pip"
cp /etc/ssl/certs/ca-certificates.crt "$WORK/base-context/ca-certificates.crt"
if [ -d /etc/xdg/pip ]; then cp -r /etc/xdg/pip/. "$WORK/base-context/pip/"; fi
cat >"$WORK/base-context/Dockerfile" <<'EOF'
FROM local/bookworm-py-minbase
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY pip/ /etc/xdg/pip/
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 LANG=C.UTF-8
EOF
"$DOCKER_BIN" build -q -t "$BASE_IMAGE" "$WORK/base-context" >/dev/null
log "base image $BASE_IMAGE ready in $((SECONDS - T)) s"

# ---------------------------------------------------------------- build the project image
T=$SECONDS
log "docker build --build-arg BASE=$BASE_IMAGE -t $IMAGE ."
"$DOCKER_BIN" build --build-arg BASE="$BASE_IMAGE" -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log"; die "docker build failed"; }
log "image built in $((SECONDS - T)) s, size $("$DOCKER_BIN" image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

user="$("$DOCKER_BIN" image inspect -f '{{.Config.User}}' "$IMAGE")"
case "$user" in ""|root|0|0:*|root:*) die "image runs as root (User='$user')" ;; esac
ports="$("$DOCKER_BIN" image inspect -f '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' "$IMAGE")"
[ "$ports" = "5006/tcp " ] || die "image exposes '$ports', expected only 5006/tcp"
log "image user '$user', exposed ports: $ports"

# ---------------------------------------------------------------- run it
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
CONTAINER="nbody-ci-$$"
T=$SECONDS
"$DOCKER_BIN" run -d --name "$CONTAINER" --label nbody-ci -p "127.0.0.1:$PORT:5006" \
    -e NBODY_WEBSOCKET_ORIGINS="127.0.0.1:$PORT" "$IMAGE" >/dev/null
health=""
for _ in $(seq 1 240); do
    health="$("$DOCKER_BIN" inspect -f '{{.State.Health.Status}}' "$CONTAINER" 2>/dev/null || echo gone)"
    [ "$health" = healthy ] && break
    running="$("$DOCKER_BIN" inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null || echo false)"
    [ "$running" = true ] || die "container stopped before it was healthy"
    [ "$health" = unhealthy ] && die "container reported unhealthy"
    sleep 0.5
done
[ "$health" = healthy ] || die "container not healthy after 120 s (status '$health')"
log "container healthy in $((SECONDS - T)) s on 127.0.0.1:$PORT"

uid="$("$DOCKER_BIN" exec "$CONTAINER" id -u)"
[ "$uid" != 0 ] || die "server process runs as root inside the container"
log "server runs as uid $uid"

# ---------------------------------------------------------------- browser check
T=$SECONDS
NBODY_CONTAINER_URL="http://127.0.0.1:$PORT/app" \
    "$PYTHON" -m pytest -p no:cacheprovider -n 0 -q tests/docker/container_ui_check.py
log "browser check passed in $((SECONDS - T)) s"
log "docker step OK"
