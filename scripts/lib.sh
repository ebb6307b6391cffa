#!/usr/bin/env bash
# Shared by the private-server scripts (rabbitmq.sh, rabbitmq-cluster.sh, postgres.sh): source it.

# apt_install PACKAGE WHAT: install a Debian package without letting it start its system
# service (a policy-rc.d that says no while apt runs); as root only, else explain and exit.
apt_install() {
    local package="$1" what="$2"
    if [[ "$(id -u)" != 0 ]]; then
        log "$what is not installed; run as root to install it, or: apt-get install $package"
        exit 1
    fi
    log "installing $package (apt-get)"
    local policy_added=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    [[ -n "$policy_added" ]] && rm -f /usr/sbin/policy-rc.d
    return 0
}

# rabbitmq_env DIR NODENAME PORT: the environment of a private RabbitMQ node whose files all
# live in DIR (HOME too, so the server and the CLI read the same Erlang cookie)
rabbitmq_env() {
    local dir="$1" node="$2" port="$3"
    export HOME="$dir" \
        RABBITMQ_NODENAME="$node" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$port" \
        RABBITMQ_DIST_PORT="$((port + 20000))" \
        RABBITMQ_CONF_ENV_FILE=/dev/null \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/rabbitmq.pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand"
}
