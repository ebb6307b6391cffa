#!/usr/bin/env bash
# A private RabbitMQ node for the tests: no systemd, no system config, nothing outside the
# node directory (default .renkei/rabbitmq in the repository).
#
#   scripts/rabbitmq.sh start [--user PID] [--keep]
#                                            start (or reuse) the node; print its AMQP URL
#                                            (--keep: keep the data of an earlier run)
#   scripts/rabbitmq.sh restart              stop the node gracefully and start it again,
#                                            keeping its data (queues, messages)
#   scripts/rabbitmq.sh kill                 kill -9 the node's VM (fault tests; data is kept
#                                            for a `start --keep`)
#   scripts/rabbitmq.sh stop  [--user PID]   stop it (with --user: only if the node was started
#                                            by a `start --user` and no other user is alive)
#   scripts/rabbitmq.sh url                  print the AMQP URL
#   scripts/rabbitmq.sh status               exit 0 when the node answers
#   scripts/rabbitmq.sh vhost NAME           create vhost NAME (guest may use it); print its URL
#   scripts/rabbitmq.sh drop-vhost NAME      delete vhost NAME and everything in it
#   scripts/rabbitmq.sh user NAME PASSWORD VHOST [CONFIGURE WRITE READ]
#                                            create (or re-password) user NAME with these
#                                            permission regexes on VHOST (default '.*' each)
#   scripts/rabbitmq.sh drop-user NAME       delete user NAME
#
# Settings (environment): RENKEI_RABBITMQ_DIR, RENKEI_RABBITMQ_PORT (5673; the distribution
# port is this + 20000), RENKEI_RABBITMQ_NODENAME (renkei-test@localhost).
#
# What we learned (RabbitMQ 3.10, Debian 12):
# - /usr/sbin/rabbitmq-server is a wrapper that su's to the rabbitmq user and cds to
#   /var/lib/rabbitmq; /usr/lib/rabbitmq/bin/* are the real scripts and run fine as any user.
# - The Erlang cookie is $HOME/.erlang.cookie for the server and the CLI alike: HOME is pinned
#   to the node directory so both always agree (RABBITMQ_ERLANG_COOKIE is deprecated).
# - RABBITMQ_CONF_ENV_FILE=/dev/null keeps /etc/rabbitmq/rabbitmq-env.conf out.
# - `rabbitmqctl await_startup` fails at once (exit 69) until the node is registered in epmd,
#   and then polls only every 10 s: we wait for the AMQP port instead, then ask await_startup.
# - The node starts epmd itself when none runs; epmd outlives the node (harmless).
# - The node's data is disposable: it is wiped on every fresh start, so stale queues, a
#   renamed node or an aborted earlier run never leak into the next one. Only `restart` and
#   `start --keep` keep it (the fault tests restart a broker and expect its messages back).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${RENKEI_RABBITMQ_DIR:-$ROOT/.renkei/rabbitmq}"
PORT="${RENKEI_RABBITMQ_PORT:-5673}"
NODE="${RENKEI_RABBITMQ_NODENAME:-renkei-test@localhost}"
SBIN=/usr/lib/rabbitmq/bin
URL="amqp://guest:guest@127.0.0.1:${PORT}/"
# RENKEI_RABBITMQ_TLS_DIR (holding ca.pem, server.pem, server.key): the node listens with TLS
# only (amqps) on PORT, no plain-text listener; the tenancy tests start such a second node.
TLS_DIR="${RENKEI_RABBITMQ_TLS_DIR:-}"
[[ -n "$TLS_DIR" ]] && URL="amqps://guest:guest@localhost:${PORT}/"

log() { echo "rabbitmq.sh: $*" >&2; }

source "$ROOT/scripts/lib.sh"
rabbitmq_env "$DIR" "$NODE" "$PORT"

ensure_installed() {
    [[ -x "$SBIN/rabbitmq-server" ]] || apt_install rabbitmq-server rabbitmq-server
}

ctl() { "$SBIN/rabbitmqctl" -q -n "$NODE" "$@"; }

node_pid() {  # the pid of our node's VM, if it is alive and really is our node
    local pid cmdline
    pid="$(cat "$DIR/rabbitmq.pid" 2>/dev/null || true)"
    if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]]; then
        cmdline="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)"
        if [[ "$cmdline" == *beam*" -home $DIR "*" rabbit boot "* ]]; then
            echo "$pid"
            return 0
        fi
    fi
    # the pid file may be gone (directory wiped under a running node): look for a VM whose
    # home is exactly our node directory (the node name is not on the command line in 3.10)
    for f in /proc/[0-9]*/cmdline; do
        cmdline="$({ tr '\0' ' ' <"$f"; } 2>/dev/null || true)"
        if [[ "$cmdline" == *beam*" -home $DIR "*" rabbit boot "* ]]; then
            pid="${f#/proc/}"
            echo "${pid%/cmdline}"
            return 0
        fi
    done
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running() { node_pid >/dev/null && port_open && ctl ping >/dev/null 2>&1; }

kill_stale() {
    local pid
    pid="$(node_pid)" || return 0
    log "stopping a stale node (pid $pid) that does not answer"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.5
}

start_node() {
    ensure_installed
    mkdir -p "$DIR/users"
    exec 9>"$DIR/lock"
    flock -w 120 9 || { log "timed out waiting for $DIR/lock"; exit 1; }
    if running; then
        return 0
    fi
    kill_stale
    if port_open; then
        log "port $PORT is taken by another program; set RENKEI_RABBITMQ_PORT"
        exit 1
    fi
    if [[ -n "$keep" ]]; then
        rm -f "$DIR/rabbitmq.pid"
    else
        rm -rf "$DIR/mnesia" "$DIR/log" "$DIR/plugins-expand" "$DIR/rabbitmq.pid" "$DIR/users"
    fi
    mkdir -p "$DIR/users" "$DIR/log"
    echo '[rabbitmq_consistent_hash_exchange].' >"$DIR/enabled_plugins"
    if [[ -n "$TLS_DIR" ]]; then
        listeners="listeners.tcp = none
listeners.ssl.default = $PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false"
    else
        listeners="listeners.tcp.default = $PORT"
    fi
    cat >"$DIR/rabbitmq.conf" <<EOF
$listeners
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = ${RENKEI_RABBITMQ_LOG_LEVEL:-warning}
EOF
    echo '[].' >"$DIR/advanced.config"
    log "starting $NODE on 127.0.0.1:$PORT (data in $DIR)"
    # in its own session, without our lock descriptor (else the lock lives as long as the node)
    (exec 9>&- && cd "$DIR" && exec setsid -f "$SBIN/rabbitmq-server" >"$DIR/log/server.out" 2>&1 </dev/null)
    for _ in $(seq 600); do
        if port_open; then
            break
        fi
        if [[ -s "$DIR/rabbitmq.pid" ]] && ! node_pid >/dev/null; then
            log "the node died while starting; last lines of $DIR/log:"
            tail -n 20 "$DIR/log/server.out" "$DIR"/log/*.log >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    if ! ctl await_startup --timeout 60 >/dev/null; then
        log "the node did not start; see $DIR/log"
        tail -n 20 "$DIR/log/server.out" >&2 || true
        exit 1
    fi
    return 0
}

stop_node() {
    local pid
    pid="$(node_pid)" || { log "not running"; return 0; }
    ctl stop "$DIR/rabbitmq.pid" >/dev/null 2>&1 || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { log "stopped"; return 0; }; sleep 0.1; done
    log "node did not stop in 10 s; killing pid $pid"
    kill -9 "$pid" 2>/dev/null || true
}

live_users() {  # registered users (test runs) whose process is still alive, except $1
    local f
    for f in "$DIR"/users/*; do
        [[ -e "$f" ]] || continue
        local pid="${f##*/}"
        [[ "$pid" == "$1" ]] && continue
        if kill -0 "$pid" 2>/dev/null; then echo "$pid"; else rm -f "$f"; fi
    done
}

kill_node() {
    local pid
    pid="$(node_pid)" || { log "not running"; return 0; }
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { log "killed pid $pid"; return 0; }; sleep 0.05; done
    log "pid $pid is still alive after kill -9"
    return 1
}

cmd="${1:-}"
user=""
keep=""
if [[ "$cmd" == start ]]; then
    shift
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --user) user="${2:?--user needs a PID}"; shift 2 ;;
            --keep) keep=1; shift ;;
            *) echo "rabbitmq.sh start: unknown option $1" >&2; exit 2 ;;
        esac
    done
elif [[ "${2:-}" == "--user" ]]; then
    user="${3:?--user needs a PID}"
fi

case "$cmd" in
    start)
        was_running=""
        running && was_running=1
        start_node
        if [[ -n "$user" ]]; then
            touch "$DIR/users/$user"
            [[ -z "$was_running" ]] && touch "$DIR/users/.auto"
        elif [[ -z "$was_running" && -z "$(live_users "")" ]]; then
            rm -f "$DIR/users/.auto"  # started by hand: only a plain `stop` stops it
        fi
        # (a plain `start` on a node a test run started is a reuse, e.g. a benchmark inside the
        # run making sure a node is up, or a fault scenario's `start --keep` after its `kill`:
        # while that run lives the node is still its own, and it stops it at its end)
        echo "$URL"
        ;;
    stop)
        if [[ -n "$user" ]]; then
            rm -f "$DIR/users/$user"
            if [[ ! -e "$DIR/users/.auto" ]]; then
                log "leaving the node running (not started by a test run)"
                exit 0
            fi
            if [[ -n "$(live_users "$user")" ]]; then
                log "leaving the node running (another test run uses it)"
                exit 0
            fi
        fi
        stop_node
        ;;
    restart)
        stop_node
        keep=1
        start_node
        echo "$URL"
        ;;
    kill) kill_node ;;
    url) echo "$URL" ;;
    vhost)
        name="${2:?vhost needs a NAME}"
        ctl add_vhost "$name" >/dev/null 2>&1 || ctl list_vhosts name | grep -qx "$name"
        ctl set_permissions -p "$name" guest '.*' '.*' '.*' >/dev/null
        echo "${URL}${name}"
        ;;
    drop-vhost) ctl delete_vhost "${2:?drop-vhost needs a NAME}" >/dev/null ;;
    user)
        name="${2:?user needs NAME PASSWORD VHOST}" password="${3:?user needs a PASSWORD}" vhost="${4:?user needs a VHOST}"
        ctl add_user "$name" "$password" >/dev/null 2>&1 || ctl change_password "$name" "$password" >/dev/null
        ctl set_permissions -p "$vhost" "$name" "${5:-.*}" "${6:-.*}" "${7:-.*}" >/dev/null
        ;;
    drop-user) ctl delete_user "${2:?drop-user needs a NAME}" >/dev/null 2>&1 || true ;;
    status) running ;;
    *)
        echo "usage: $0 start [--user PID] [--keep] | stop [--user PID] | restart | kill | url | status |" \
             "vhost NAME | drop-vhost NAME | user NAME PASSWORD VHOST [CONF WRITE READ] | drop-user NAME" >&2
        exit 2
        ;;
esac
