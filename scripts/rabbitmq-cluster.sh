#!/usr/bin/env bash
# A private 3-node RabbitMQ cluster on this machine, for the cluster tests: three nodes with
# their own names, ports and data on loopback, joined into one cluster, quorum queues
# replicated on all three. No systemd, no system config, nothing outside .renkei/cluster.
#
#   scripts/rabbitmq-cluster.sh start          start (or reuse) the cluster; print the AMQP URLs
#   scripts/rabbitmq-cluster.sh stop           stop every node
#   scripts/rabbitmq-cluster.sh status         print each node's state; exit 0 when all three
#                                              run and are clustered
#   scripts/rabbitmq-cluster.sh kill NODE      kill -9 one node (NODE: c1, c2, c3 or 1..3)
#   scripts/rabbitmq-cluster.sh restart NODE   start a killed or stopped node again (its data
#                                              is kept: it rejoins the cluster and catches up)
#   scripts/rabbitmq-cluster.sh urls           print the three AMQP URLs, one a line
#   scripts/rabbitmq-cluster.sh ctl NODE ARGS  rabbitmqctl ARGS against NODE
#   scripts/rabbitmq-cluster.sh queues NODE ARGS  rabbitmq-queues ARGS against NODE
#
# Nodes: renkei-c1@localhost .. renkei-c3@localhost on 127.0.0.1:5681..5683 (distribution
# ports 25681..25683, apart from the single test node's 25673 of scripts/rabbitmq.sh).
# Settings (environment):
#   RENKEI_CLUSTER_DIR          the nodes' files (.renkei/cluster)
#   RENKEI_CLUSTER_PORT         the first node's AMQP port (5681); node i listens on it + i - 1,
#                               its Erlang distribution port on that + 20000
#   RENKEI_CLUSTER_NODE_PREFIX  the node names' prefix (renkei-c: renkei-c1@localhost ..); two
#                               clusters on one host need two prefixes (the names share epmd),
#                               two ports and two directories, e.g. RENKEI_CLUSTER_NODE_PREFIX=renkei-fo
#                               RENKEI_CLUSTER_PORT=5701 RENKEI_CLUSTER_DIR=$PWD/.renkei/cluster-fo
#
# Built on the lessons of scripts/rabbitmq.sh (HOME pinned per node directory because the
# Erlang cookie is $HOME/.erlang.cookie; RABBITMQ_CONF_ENV_FILE=/dev/null; wait for the AMQP
# port, then await_startup; data wiped on a fresh start). What the cluster adds:
# - All three nodes and the CLI must share ONE cookie: a fresh start writes a new random
#   cookie into every node's HOME.
# - Joining: c1 boots alone; c2 and c3 boot with classic-config peer discovery (the three nodes)
#   and join c1 during their first boot (no stop_app/join_cluster/start_app round, so they boot
#   in parallel). A node with data (restart after kill) ignores discovery and rejoins.
# - quorum_cluster_size 3 (the default initial group size, spelled out): every quorum queue
#   the bus declares gets a member on each node. queue_leader_locator client-local: a queue's
#   leader is the node its declaring client is connected to (the tests rely on this to put
#   the leaders on a node the bus is not connected to).
# - dead_letter_worker_publisher_confirm_timeout 5 s (RabbitMQ's default is minutes): a retry
#   waiting in a delay queue is dead-lettered back into its queue at least once; when that
#   queue's leader dies mid-way the move is unconfirmed, and the node tries it again only after
#   this timeout — with the default, the bus's retries stalled for minutes after a node loss.
# - The schedulers do not busy-wait (+sbwt none ...): four VMs share two cores here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
BASE="${RENKEI_CLUSTER_DIR:-$ROOT/.renkei/cluster}"
FIRST_PORT="${RENKEI_CLUSTER_PORT:-5681}"
PREFIX="${RENKEI_CLUSTER_NODE_PREFIX:-renkei-c}"
[[ "$PREFIX" =~ ^[A-Za-z][A-Za-z0-9_-]*$ ]] || {
    echo "rabbitmq-cluster.sh: RENKEI_CLUSTER_NODE_PREFIX='$PREFIX' is no node name prefix (letters, digits, - and _)" >&2
    exit 2
}
SBIN=/usr/lib/rabbitmq/bin
NODES=(c1 c2 c3)

log() { echo "rabbitmq-cluster.sh: $*" >&2; }

index_of() {  # c2 | 2 | renkei-c2@localhost (the prefix's) -> 1 (0-based)
    local n="${1%@localhost}"
    n="${n#"$PREFIX"}"
    n="${n#c}"
    if [[ "$n" =~ ^[1-3]$ ]]; then echo $((n - 1)); return 0; fi
    log "unknown node '$1' (c1, c2 or c3)"
    exit 2
}

dir_of() { echo "$BASE/${NODES[$1]}"; }
port_of() { echo $((FIRST_PORT + $1)); }
name_of() { echo "$PREFIX$(($1 + 1))@localhost"; }
url_of() { echo "amqp://guest:guest@127.0.0.1:$(port_of "$1")/"; }

node_env() {  # the environment of node $1, for the server and the CLI alike
    local dir port
    dir="$(dir_of "$1")"
    port="$(port_of "$1")"
    rabbitmq_env "$dir" "$(name_of "$1")" "$port"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"
}

ensure_installed() {
    [[ -x "$SBIN/rabbitmq-server" ]] || apt_install rabbitmq-server rabbitmq-server
}

ctl() { local i="$1"; shift; (node_env "$i" && "$SBIN/rabbitmqctl" -q -n "$(name_of "$i")" "$@"); }
queues() { local i="$1"; shift; (node_env "$i" && "$SBIN/rabbitmq-queues" -q -n "$(name_of "$i")" "$@"); }

node_pid() {  # the pid of node $1's VM, if it is alive (found by its home directory)
    local dir pid cmdline f
    dir="$(dir_of "$1")"
    pid="$(cat "$dir/rabbitmq.pid" 2>/dev/null || true)"
    if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]]; then
        cmdline="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)"
        if [[ "$cmdline" == *beam*" -home $dir "*" rabbit boot "* ]]; then
            echo "$pid"
            return 0
        fi
    fi
    for f in /proc/[0-9]*/cmdline; do
        cmdline="$({ tr '\0' ' ' <"$f"; } 2>/dev/null || true)"
        if [[ "$cmdline" == *beam*" -home $dir "*" rabbit boot "* ]]; then
            pid="${f#/proc/}"
            echo "${pid%/cmdline}"
            return 0
        fi
    done
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { node_pid "$1" >/dev/null && port_open "$(port_of "$1")" && ctl "$1" ping >/dev/null 2>&1; }

running_nodes() {  # the running cluster members as node $1 sees them, one a line
    ctl "$1" eval 'io:format("~s~n", [string:join([atom_to_list(N) || N <- rabbit_nodes:all_running()], " ")]).' \
        2>/dev/null | head -n 1 | tr ' ' '\n' | grep -v '^ok$' | sort
}

clustered() {  # every node runs and sees all three
    local i want
    want="$(for i in 0 1 2; do name_of "$i"; done | sort)"
    for i in 0 1 2; do
        running "$i" || return 1
        [[ "$(running_nodes "$i")" == "$want" ]] || return 1
    done
}

kill_node() {  # kill -9, wait until the VM is gone
    local pid
    pid="$(node_pid "$1")" || return 0
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    log "pid $pid of $(name_of "$1") did not exit after kill -9"
    return 1
}

write_config() {  # node $1's files; $2 = the cookie
    local i="$1" dir port
    dir="$(dir_of "$i")"
    port="$(port_of "$i")"
    rm -rf "$dir/mnesia" "$dir/log" "$dir/plugins-expand" "$dir/rabbitmq.pid"
    mkdir -p "$dir/log"
    rm -f "$dir/.erlang.cookie"
    (umask 077 && printf '%s' "$2" >"$dir/.erlang.cookie")
    chmod 400 "$dir/.erlang.cookie"
    echo '[rabbitmq_consistent_hash_exchange].' >"$dir/enabled_plugins"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = $port
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
queue_leader_locator = client-local
EOF
    if [[ "$i" != 0 ]]; then  # c2, c3 join c1 on their first boot
        cat >>"$dir/rabbitmq.conf" <<EOF
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = $(name_of 0)
cluster_formation.classic_config.nodes.2 = $(name_of 1)
cluster_formation.classic_config.nodes.3 = $(name_of 2)
cluster_formation.node_type = disc
EOF
    fi
    echo '[{rabbit, [{quorum_cluster_size, 3}, {dead_letter_worker_publisher_confirm_timeout, 5000}]}].' \
        >"$dir/advanced.config"
}

launch() {  # start node $1's VM in its own session (returns at once)
    local dir
    dir="$(dir_of "$1")"
    rm -f "$dir/rabbitmq.pid"
    mkdir -p "$dir/log"
    (node_env "$1" && exec 9>&- && cd "$dir" && exec setsid -f "$SBIN/rabbitmq-server" \
        >>"$dir/log/server.out" 2>&1 </dev/null)
}

await_node() {  # wait for node $1's AMQP port, then for the broker to be fully booted
    local i="$1" dir
    dir="$(dir_of "$i")"
    for _ in $(seq 900); do
        port_open "$(port_of "$i")" && break
        if [[ -s "$dir/rabbitmq.pid" ]] && ! node_pid "$i" >/dev/null; then
            log "$(name_of "$i") died while starting; last lines of $dir/log:"
            tail -n 20 "$dir/log/server.out" "$dir"/log/*.log >&2 || true
            return 1
        fi
        sleep 0.1
    done
    if ! ctl "$i" await_startup --timeout 90 >/dev/null; then
        log "$(name_of "$i") did not start; see $dir/log"
        tail -n 20 "$dir/log/server.out" >&2 || true
        return 1
    fi
}

start_cluster() {
    ensure_installed
    mkdir -p "$BASE"
    exec 9>"$BASE/lock"
    flock -w 180 9 || { log "timed out waiting for $BASE/lock"; exit 1; }
    if clustered; then
        return 0
    fi
    local i
    for i in 0 1 2; do kill_node "$i"; done
    for i in 0 1 2; do
        if port_open "$(port_of "$i")"; then
            log "port $(port_of "$i") is taken by another program; set RENKEI_CLUSTER_PORT"
            exit 1
        fi
    done
    local cookie
    cookie="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr '0-9a-f' 'A-P')"
    for i in 0 1 2; do write_config "$i" "$cookie"; done
    log "starting $(name_of 0), $(name_of 1), $(name_of 2) on 127.0.0.1:$(port_of 0)..$(port_of 2) (data in $BASE)"
    launch 0
    await_node 0 || exit 1
    launch 1
    launch 2
    local waits=()
    await_node 1 & waits+=($!)
    await_node 2 & waits+=($!)
    for pid in "${waits[@]}"; do wait "$pid" || exit 1; done
    local want
    want="$(for i in 0 1 2; do name_of "$i"; done | sort)"
    for _ in $(seq 20); do  # each node answered await_startup: one view of the cluster is enough
        [[ "$(running_nodes 0)" == "$want" ]] && return 0
        sleep 0.5
    done
    log "the nodes did not form one cluster; as $(name_of 0) sees it: $(running_nodes 0 | tr '\n' ' ')"
    exit 1
}

stop_all() {
    local i pids=()
    for i in 0 1 2; do
        local pid
        pid="$(node_pid "$i")" || continue
        pids+=("$pid")
        ctl "$i" stop >/dev/null 2>&1 &
    done
    [[ ${#pids[@]} -eq 0 ]] && { log "not running"; return 0; }
    for _ in $(seq 300); do
        local alive=0 p
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && { wait; log "stopped"; return 0; }
        sleep 0.1
    done
    log "some nodes did not stop in 30 s; killing them"
    for i in 0 1 2; do kill_node "$i" || true; done
    wait
}

print_status() {
    local i ok=0
    for i in 0 1 2; do
        if running "$i"; then
            echo "$(name_of "$i") running on 127.0.0.1:$(port_of "$i"), sees: $(running_nodes "$i" | tr '\n' ' ')"
        else
            echo "$(name_of "$i") down"
            ok=1
        fi
    done
    [[ $ok -eq 0 ]] && clustered
}

cmd="${1:-}"
case "$cmd" in
    start)
        start_cluster
        for i in 0 1 2; do url_of "$i"; done
        ;;
    stop) stop_all ;;
    status) print_status ;;
    urls) for i in 0 1 2; do url_of "$i"; done ;;
    kill)
        i="$(index_of "${2:?kill needs a NODE (c1, c2, c3)}")"
        node_pid "$i" >/dev/null || { log "$(name_of "$i") is not running"; exit 1; }
        kill_node "$i"
        log "killed $(name_of "$i") (kill -9)"
        ;;
    restart)
        i="$(index_of "${2:?restart needs a NODE (c1, c2, c3)}")"
        if running "$i"; then
            log "$(name_of "$i") is running"
            exit 0
        fi
        kill_node "$i"
        launch "$i"
        await_node "$i" || exit 1
        log "$(name_of "$i") is back"
        ;;
    ctl)
        i="$(index_of "${2:?ctl needs a NODE}")"
        shift 2
        ctl "$i" "$@"
        ;;
    queues)
        i="$(index_of "${2:?queues needs a NODE}")"
        shift 2
        queues "$i" "$@"
        ;;
    *)
        echo "usage: $0 start | stop | status | urls | kill NODE | restart NODE | ctl NODE ARGS... | queues NODE ARGS..." >&2
        exit 2
        ;;
esac
