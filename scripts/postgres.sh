#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests: no systemd, no system cluster, nothing outside
# the cluster directory (default .renkei/postgres in the repository).
#
#   scripts/postgres.sh start [--user PID]   start (or reuse) the cluster; print its DSN
#   scripts/postgres.sh stop  [--user PID]   stop it (with --user: only if the cluster was
#                                            started by a `start --user` and no other user is alive)
#   scripts/postgres.sh url                  print the DSN
#   scripts/postgres.sh status               exit 0 when the server answers
#
# Settings (environment): RENKEI_POSTGRES_DIR, RENKEI_POSTGRES_PORT (5433),
# RENKEI_POSTGRES_DB (renkei_test).
#
# What we learned (PostgreSQL 15, Debian 12):
# - Debian's binaries live in /usr/lib/postgresql/<major>/bin (pg_ctl, initdb are not on PATH
#   except through pg_wrapper, which wants a cluster registered in /etc/postgresql).
# - initdb and postgres refuse to run as root: as root the cluster belongs to the `postgres`
#   user (created by the package) and every server command runs through runuser.
# - The package starts its own cluster "main" on 5432 when installed; a policy-rc.d that
#   says 101 keeps it from starting, and our cluster uses its own port and socket directory.
# - The cluster is a test fixture: trust authentication on 127.0.0.1 only, fsync off.
#   A directory that is not a complete cluster of the installed major version (an aborted
#   initdb, an older PostgreSQL, files owned by someone else) is wiped and made anew;
#   pg_ctl itself removes a postmaster.pid whose process is gone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
DIR="${RENKEI_POSTGRES_DIR:-$ROOT/.renkei/postgres}"
PORT="${RENKEI_POSTGRES_PORT:-5433}"
DB="${RENKEI_POSTGRES_DB:-renkei_test}"
DATA="$DIR/data"
RUN="$DIR/run"  # socket directory and server log
URL="postgresql://postgres@127.0.0.1:${PORT}/${DB}"

log() { echo "postgres.sh: $*" >&2; }

bindir() {  # the newest installed major version's binaries
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$dir" && -x "$dir/pg_ctl" ]] && echo "$dir"
}

ensure_installed() {
    bindir >/dev/null && return 0
    apt_install postgresql PostgreSQL
    bindir >/dev/null || { log "postgresql installed, but no /usr/lib/postgresql/*/bin/pg_ctl"; exit 1; }
}

# The server's user: `postgres` when we are root, else ourselves.
if [[ "$(id -u)" == 0 ]]; then OWNER=postgres; else OWNER="$(id -un)"; fi

as_owner() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u "$OWNER" -- "$@"; else "$@"; fi
}

pg() { as_owner "$BIN/$1" "${@:2}"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running() {
    [[ -n "${BIN:-}" && -s "$DATA/postmaster.pid" ]] || return 1
    pg pg_ctl -D "$DATA" status >/dev/null 2>&1 && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2
}

fresh_cluster() {
    local major
    major="$(basename "$(dirname "$BIN")")"
    [[ -f "$DATA/PG_VERSION" && "$(cat "$DATA/PG_VERSION")" == "$major" \
        && "$(stat -c %U "$DATA")" == "$OWNER" && -f "$DATA/postgresql.conf" ]] && return 0
    log "making a new cluster in $DATA (PostgreSQL $major)"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    chown "$OWNER" "$DATA"
    chmod 700 "$DATA"
    pg initdb -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$RUN/initdb.log" 2>&1 || {
        log "initdb failed; see $RUN/initdb.log"; tail -n 20 "$RUN/initdb.log" >&2; exit 1; }
    cat >>"$DATA/postgresql.conf" <<EOF
# renkei test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 64MB
log_min_messages = warning
EOF
}

start_server() {
    ensure_installed
    BIN="$(bindir)"
    mkdir -p "$DIR/users" "$RUN"
    chown "$OWNER" "$RUN"
    exec 9>"$DIR/lock"
    flock -w 120 9 || { log "timed out waiting for $DIR/lock"; exit 1; }
    running && return 0
    if [[ -s "$DATA/postmaster.pid" ]] && pg pg_ctl -D "$DATA" status >/dev/null 2>&1; then
        log "stopping a stale server that does not answer"
        pg pg_ctl -D "$DATA" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
    fi
    if port_open; then
        log "port $PORT is taken by another program; set RENKEI_POSTGRES_PORT"
        exit 1
    fi
    fresh_cluster
    log "starting PostgreSQL on 127.0.0.1:$PORT (data in $DATA)"
    # in its own session, without our lock descriptor (else the lock lives as long as the server)
    if ! (exec 9>&- && cd "$DIR" && pg pg_ctl -D "$DATA" -l "$RUN/server.log" -w -t 60 -s start >/dev/null); then
        log "the server did not start; last lines of $RUN/server.log:"
        tail -n 20 "$RUN/server.log" >&2 || true
        exit 1
    fi
    if ! "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
    fi
}

stop_server() {
    BIN="$(bindir)" || { log "not installed"; return 0; }
    if [[ ! -s "$DATA/postmaster.pid" ]] || ! pg pg_ctl -D "$DATA" status >/dev/null 2>&1; then
        log "not running"
        return 0
    fi
    pg pg_ctl -D "$DATA" stop -m fast -w -t 30 >/dev/null 2>&1 || {
        log "server did not stop in 30 s; stopping it immediately"
        pg pg_ctl -D "$DATA" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
    }
    log "stopped"
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

cmd="${1:-}"
user=""
if [[ "${2:-}" == "--user" ]]; then user="${3:?--user needs a PID}"; fi
BIN="$(bindir || true)"

case "$cmd" in
    start)
        was_running=""
        running && was_running=1
        start_server
        if [[ -n "$user" ]]; then
            touch "$DIR/users/$user"
            [[ -z "$was_running" ]] && touch "$DIR/users/.auto"
        elif [[ -z "$was_running" && -z "$(live_users "")" ]]; then
            rm -f "$DIR/users/.auto"  # started by hand: only a plain `stop` stops it
        fi
        # (a plain `start` on a server a test run started is a reuse, also when the server was
        # stopped inside the run and is started again: while that run lives it is still its own)
        echo "$URL"
        ;;
    stop)
        if [[ -n "$user" ]]; then
            rm -f "$DIR/users/$user"
            if [[ ! -e "$DIR/users/.auto" ]]; then
                log "leaving the server running (not started by a test run)"
                exit 0
            fi
            if [[ -n "$(live_users "$user")" ]]; then
                log "leaving the server running (another test run uses it)"
                exit 0
            fi
        fi
        stop_server
        ;;
    url) echo "$URL" ;;
    status) running ;;
    *)
        echo "usage: $0 start|stop [--user PID] | url | status" >&2
        exit 2
        ;;
esac
