#!/usr/bin/env bash
# A private Docker engine for the engine tests: its own socket, data root and
# exec root under one directory, no iptables, no bridge (containers use
# network_mode none). No registry is reachable, so the test image
# cutover-test/busybox:latest is made with `docker import` from a busybox rootfs.
#
# Each checkout has its own engine: the directory (socket, data root, exec root,
# pidfile, log) is /tmp/cutover-docker-<first 12 hex digits of the SHA-256 of the
# checkout's absolute path>, so two clones testing at once neither share nor stop
# each other's engine. CUTOVER_DOCKER_DIR overrides it. The directory stays short
# (/tmp, not $TMPDIR) because unix socket paths have a 108-byte limit.
#
#   scripts/docker-engine.sh start       # idempotent; prints `export DOCKER_HOST=...` on stdout
#   scripts/docker-engine.sh install [PKG...]  # apt-installs what the engine needs that is
#                                        # missing, and the PKGs, in one apt-get run
#   scripts/docker-engine.sh stop
#   scripts/docker-engine.sh status      # exit 0 when this checkout's engine answers
#   scripts/docker-engine.sh dir [PATH]  # the engine directory of this checkout (or of PATH)
#
# Use:  eval "$(scripts/docker-engine.sh start)"
# Everything except the export line (and dir's output) goes to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# The longest socket under the directory: containerd's ttrpc socket in the exec root.
LONGEST_SOCKET_SUFFIX="/exec/containerd/containerd.sock.ttrpc"
SUN_PATH_MAX=107 # 108 bytes including the terminating NUL

log() { echo "docker-engine: $*" >&2; }

# engine_dir CHECKOUT: the engine directory for the checkout at CHECKOUT.
engine_dir() {
    if [[ -n "${CUTOVER_DOCKER_DIR:-}" ]]; then
        realpath -m -- "$CUTOVER_DOCKER_DIR"
        return
    fi
    local root hash
    root="$(realpath -m -- "$1")"
    hash="$(printf '%s' "$root" | sha256sum | cut -c1-12)"
    echo "/tmp/cutover-docker-$hash"
}

ENGINE_DIR="$(engine_dir "$REPO_ROOT")"
if (($(LC_ALL=C && echo "${#ENGINE_DIR}") + ${#LONGEST_SOCKET_SUFFIX} > SUN_PATH_MAX)); then
    log "engine directory $ENGINE_DIR is too long: sockets under it would pass the" \
        "108-byte unix socket path limit; set CUTOVER_DOCKER_DIR to a shorter directory"
    exit 2
fi
SOCK="$ENGINE_DIR/docker.sock"
PIDFILE="$ENGINE_DIR/dockerd.pid"
LOG="$ENGINE_DIR/dockerd.log"
HOST_URL="unix://$SOCK"
IMAGE="cutover-test/busybox:latest"
START_WAIT="${CUTOVER_DOCKER_START_WAIT:-60}"
STOP_WAIT=30

# The docker CLI, always pointed at our socket whatever DOCKER_HOST says.
dk() { docker -H "$HOST_URL" "$@"; }

engine_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A recycled pid would not be dockerd.
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == dockerd ]] || return 1
    echo "$pid"
}

engine_up() { engine_pid >/dev/null && dk info >/dev/null 2>&1; }

# ensure_packages [PKG...]: the engine's packages that are missing, and the PKGs (another
# script's, so that one apt-get update serves both), installed in one apt-get run.
ensure_packages() {
    local missing=("$@")
    dpkg -s docker.io >/dev/null 2>&1 && command -v dockerd >/dev/null || missing+=(docker.io)
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    ((${#missing[@]})) || return 0
    if [[ "$(id -u)" != 0 ]]; then
        log "missing packages ${missing[*]} and not root: install them first"
        exit 1
    fi
    log "installing ${missing[*]}"
    # Keep the packaged docker.service from starting: we run our own engine.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    # Without Recommends: 63 packages instead of 195 on a clean bookworm (the rest are
    # avahi, cups, samba, udev, a node exporter... that no test uses), and without an fsync
    # per unpacked file (force-unsafe-io, as Debian's own container images install): a
    # machine that crashes mid-install is set up again anyway.
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-unsafe-io "${missing[@]}"
    } >&2 || rc=$?
    ((made_policy)) && rm -f "$policy"
    if ((rc)); then
        log "apt-get failed (exit $rc)"
        exit "$rc"
    fi
}

start_engine() {
    mkdir -p "$ENGINE_DIR"
    if engine_up; then
        log "engine already running (pid $(engine_pid)) at $HOST_URL; reusing it"
        return 0
    fi
    local pid
    if pid="$(engine_pid)"; then
        # Alive but not answering yet (another start in progress, or wedged).
        log "dockerd pid $pid exists but does not answer yet; waiting for it"
    else
        rm -f "$PIDFILE" "$SOCK"
        : >"$LOG"
        log "starting dockerd at $HOST_URL (log: $LOG)"
        # setsid + nohup: the engine outlives this script and its process group.
        setsid nohup dockerd \
            --host "$HOST_URL" \
            --data-root "$ENGINE_DIR/data" \
            --exec-root "$ENGINE_DIR/exec" \
            --pidfile "$PIDFILE" \
            --storage-driver=vfs \
            --iptables=false \
            --ip-forward=false \
            --ip-masq=false \
            --bridge=none \
            --exec-opt native.cgroupdriver=cgroupfs \
            </dev/null >>"$LOG" 2>&1 &
        pid=$!
    fi
    local waited=0
    until dk info >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited during startup; log tail:"
            tail -n 40 "$LOG" >&2 || true
            exit 1
        fi
        if ((waited >= START_WAIT)); then
            log "dockerd did not answer within ${START_WAIT}s; log tail:"
            tail -n 40 "$LOG" >&2 || true
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "engine up after ~${waited}s: $(dk version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null || echo '?')"
}

build_image() {
    if dk image inspect "$IMAGE" >/dev/null 2>&1; then
        log "image $IMAGE present"
        return 0
    fi
    local busybox=/bin/busybox root
    if ldd "$busybox" >/dev/null 2>&1; then
        log "$busybox is dynamically linked; install busybox-static"
        exit 1
    fi
    root="$(mktemp -d "$ENGINE_DIR/rootfs.XXXXXX")"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/www}
    chmod 1777 "$root/tmp"
    cp "$busybox" "$root/bin/busybox"
    local applet
    while read -r applet; do
        [[ -n "$applet" && "$applet" != bin/busybox ]] || continue
        mkdir -p "$root/$(dirname "$applet")"
        ln -sf /bin/busybox "$root/$applet"
    done < <("$busybox" --list-full)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar -C "$root" -cf - . | dk import \
        --change 'CMD ["/bin/sh"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$IMAGE" >/dev/null
    rm -rf "$root"
    log "built image $IMAGE"
}

stop_engine() {
    local pid
    if ! pid="$(engine_pid)"; then
        log "engine not running"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping dockerd pid $pid"
    kill -TERM "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_WAIT)); then
            log "dockerd still alive after ${STOP_WAIT}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    rm -f "$PIDFILE" "$SOCK"
    log "stopped"
}

status_engine() {
    if engine_up; then
        log "running (pid $(engine_pid)) at $HOST_URL"
        echo "export DOCKER_HOST=$HOST_URL"
        return 0
    fi
    log "not running (expected at $HOST_URL)"
    return 1
}

case "${1:-}" in
start)
    ensure_packages
    start_engine
    build_image
    echo "export DOCKER_HOST=$HOST_URL"
    ;;
install)
    shift
    ensure_packages "$@"
    ;;
stop) stop_engine ;;
status) status_engine ;;
dir)
    if (($# > 1)); then
        engine_dir "$2"
    else
        echo "$ENGINE_DIR"
    fi
    ;;
*)
    echo "usage: $0 start|install [PKG...]|stop|status|dir [CHECKOUT]" >&2
    exit 2
    ;;
esac
