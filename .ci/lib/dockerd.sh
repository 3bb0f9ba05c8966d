#!/usr/bin/env bash
# Ensure a Docker engine is installed and answering on /var/run/docker.sock.
#
#   bash .ci/lib/dockerd.sh          # install if needed, start if needed, wait
#   . .ci/lib/dockerd.sh; dockerd_ensure
#
# Machines without an init system (no systemd as PID 1) get a dockerd started
# in the background; its log goes to $DOCKERD_LOG. Safe to run any number of
# times, also concurrently: an engine that already answers is left alone.
# See .ci/lib/README.md for the flags and why.

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dc-overview-dockerd.log}"
DOCKERD_LOCK="${DOCKERD_LOCK:-/run/dc-overview-dockerd.lock}"
DOCKERD_WAIT_S="${DOCKERD_WAIT_S:-60}"
# Empty: let dockerd choose (overlay2 where the backing filesystem allows it).
DOCKERD_STORAGE_DRIVER="${DOCKERD_STORAGE_DRIVER:-}"

_dockerd_say() { echo "dockerd.sh: $*" >&2; }

_dockerd_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

dockerd_answers() {
    timeout 10 docker info >/dev/null 2>&1
}

dockerd_install() {
    if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
        return 0
    fi
    _dockerd_say "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet; update once on failure.
    _dockerd_as_root apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends docker.io >/dev/null ||
        { _dockerd_as_root apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null &&
          _dockerd_as_root apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends docker.io >/dev/null; } ||
        { _dockerd_say "apt-get install docker.io failed"; return 1; }
}

_dockerd_start() {
    local flags=(
        --iptables=false          # leave the host's firewall alone; see README
        --ip-masq=false           # no NAT rules either (implied, made explicit)
        --host=unix:///var/run/docker.sock
        --exec-root=/var/run/docker
        --log-level=warn
    )
    [ -n "$DOCKERD_STORAGE_DRIVER" ] && flags+=(--storage-driver="$DOCKERD_STORAGE_DRIVER")
    _dockerd_say "starting dockerd ${flags[*]} (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    # setsid + nohup: the engine outlives the shell (and CI step) that started it.
    "${sudo[@]}" setsid nohup dockerd "${flags[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
}

dockerd_ensure() {
    if dockerd_answers; then
        return 0
    fi
    dockerd_install || return 1
    (
        # Two callers at once must not both start an engine.
        exec 9>"$DOCKERD_LOCK"
        flock -w "$((DOCKERD_WAIT_S + 10))" 9 || { _dockerd_say "lock $DOCKERD_LOCK busy"; exit 1; }
        if dockerd_answers; then exit 0; fi
        # A dead engine leaves a pid file behind that makes the next one refuse to start.
        if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
            rm -f /var/run/docker.pid
        fi
        if ! pgrep -x dockerd >/dev/null 2>&1; then
            _dockerd_start
        fi
        local waited=0
        until dockerd_answers; do
            if [ "$waited" -ge "$DOCKERD_WAIT_S" ]; then
                _dockerd_say "dockerd did not answer within ${DOCKERD_WAIT_S}s; last log lines:"
                tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null
                exit 1
            fi
            sleep 1
            waited=$((waited + 1))
        done
        _dockerd_say "ready: $(docker info --format '{{.ServerVersion}} {{.Driver}} cgroup {{.CgroupVersion}}/{{.CgroupDriver}}' 2>/dev/null)"
    )
}

# Executed (not sourced): do the work.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    dockerd_ensure
fi
