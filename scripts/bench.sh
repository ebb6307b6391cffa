#!/usr/bin/env bash
# The benchmark command: `bash scripts/bench.sh [bench.pipeline options]`.
# Sets up .venv (scripts/venv.sh), starts the private RabbitMQ node unless
# RENKEI_BENCH_AMQP_URL is set, and runs `python -m bench.pipeline` (see bench/README.md):
# renkei and the hand-written aio-pika reference, back to back, results in bench/results/.
# `bash scripts/bench.sh --embedded [bench.embedded options]` runs the embedded path instead
# (`python -m bench.embedded`: the bus on the embedded broker to null sinks; no server needed).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
source scripts/venv.sh dev || exit 1
if [[ "${1:-}" == "--embedded" ]]; then
    shift
    exec "$PY" -m bench.embedded "$@"
fi
if [[ -z "${RENKEI_BENCH_AMQP_URL:-}" ]]; then
    RENKEI_BENCH_AMQP_URL="$(bash scripts/rabbitmq.sh start)" || { echo "RabbitMQ did not start" >&2; exit 1; }
    export RENKEI_BENCH_AMQP_URL
fi
exec "$PY" -m bench.pipeline "$@"
