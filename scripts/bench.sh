#!/usr/bin/env bash
# The benchmark suite: `bash scripts/bench.sh [--full]` runs every figure of issue 10's table
# against its target, writes bench/results/<name>.json for each and prints the summary
# (bench/results/summary.json): figure, measured, target, met?  See bench/README.md.
#
#   bash scripts/bench.sh                  small sizes (about 10 minutes on a quiet 2-core machine)
#   bash scripts/bench.sh --full           the issue's sizes (100,000 changes, 1,000,000 records: an hour)
#   bash scripts/bench.sh --only demo,run  some of: demo embedded rabbitmq run ingest pipeline stages wake audit
#
# One benchmark on its own, with its own options (as before):
#   bash scripts/bench.sh --pipeline [bench.pipeline options]   renkei vs aio-pika (and FastStream)
#   bash scripts/bench.sh --embedded [bench.embedded options]   the bus on the embedded broker
#   bash scripts/bench.sh --ingest   [bench.ingest options]     the Avro file (when bench/ingest.py exists)
#
# Sets up .venv with the dev and bench extras (FastStream is in `bench` only) and starts the
# private RabbitMQ node (scripts/rabbitmq.sh; RENKEI_RABBITMQ_PORT etc. choose it) unless
# RENKEI_BENCH_AMQP_URL is set. Exit status: 0 when every benchmark ran and wrote its result
# (a target not met is in the summary, not in the status), 1 when one failed to do its work.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
source scripts/venv.sh dev,bench || exit 1

amqp() {
    if [[ -z "${RENKEI_BENCH_AMQP_URL:-}" ]]; then
        RENKEI_BENCH_AMQP_URL="$(bash scripts/rabbitmq.sh start)" || { echo "RabbitMQ did not start" >&2; exit 1; }
        export RENKEI_BENCH_AMQP_URL
    fi
}

case "${1:-}" in
    --embedded) shift; exec "$PY" -m bench.embedded "$@" ;;
    --pipeline) shift; amqp; exec "$PY" -m bench.pipeline "$@" ;;
    --ingest)
        shift
        [[ -f bench/ingest.py ]] || { echo "bench/ingest.py is not here yet" >&2; exit 1; }
        exec "$PY" -m bench.ingest "$@" ;;
esac

full=0
only="demo embedded rabbitmq run ingest pipeline stages wake audit"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --full) full=1 ;;
        --only) only="${2//,/ }"; shift ;;
        *) echo "usage: bash scripts/bench.sh [--full] [--only NAME,...] | --pipeline|--embedded|--ingest [options]" >&2
           exit 2 ;;
    esac
    shift
done

results=bench/results
mkdir -p "$results"
stamp="$(mktemp)"
trap 'rm -f "$stamp"' EXIT
failed=()
wants() { [[ " $only " == *" $1 "* ]]; }
step() {  # step NAME RESULT-FILE COMMAND...: run it; it must write RESULT-FILE anew
    local name="$1" file="$2"
    shift 2
    printf '\n== %s\n' "$name"
    "$@"
    if [[ ! "$file" -nt "$stamp" ]]; then
        echo "bench.sh: $name did not write $file" >&2
        failed+=("$name")
    fi
}

if ((full)); then
    demo=(1000 4000 16000); growth=(1000 10000 100000); loads=(--load 200x15 --load 1000x15)
    pipeline=(--messages 2000 --rounds 3); stages=(--changes 4000); ingest=(--full); trail=(--records 2000000)
else
    demo=(1000); growth=(1000 4000); loads=(--load 200x15 --load 1000x5)
    pipeline=(--messages 1000 --rounds 2); stages=(--changes 1000); ingest=(); trail=(--records 400000)
fi

wants demo && step "renkei demo" "$results/demo.json" "$PY" -m bench.demo --changes "${demo[@]}"
wants embedded && step "embedded broker, null sinks" "$results/embedded.json" \
    "$PY" -m bench.embedded --changes "${growth[@]}" --repeat 3 --out "$results/embedded.json"
if wants rabbitmq; then
    amqp
    vhost="renkei-bench-growth-$$"
    if url="$(bash scripts/rabbitmq.sh vhost "$vhost")"; then
        step "RabbitMQ, null sinks" "$results/embedded-rabbitmq.json" \
            "$PY" -m bench.embedded --changes "${growth[@]}" --repeat 3 --broker-url "$url" \
            --out "$results/embedded-rabbitmq.json"
        bash scripts/rabbitmq.sh drop-vhost "$vhost"
    else
        failed+=("rabbitmq")
    fi
fi
wants run && step "renkei run, offered load" "$results/run_latency.json" "$PY" -m bench.run_latency "${loads[@]}"
if wants ingest; then
    if [[ -f bench/ingest.py ]]; then
        step "Avro file" "$results/ingest.json" "$PY" -m bench.ingest "${ingest[@]}"
    else
        printf '\n== Avro file\nnot yet available: bench/ingest.py is not in this checkout\n'
    fi
fi
if wants pipeline; then
    amqp
    step "RabbitMQ router vs aio-pika and FastStream" "$results/pipeline.json" \
        "$PY" -m bench.pipeline "${pipeline[@]}" --faststream --out "$results/pipeline.json"
fi
if wants stages; then
    step "per-stage throughput" "$results/stages.json" "$PY" -m bench.stages "${stages[@]}"
    printf '\n== capacity model (docs/scaling.md)\n'
    "$PY" -m bench.capacity --update-doc >/dev/null && echo "docs/scaling.md: tables recomputed from $results/stages.json"
fi

wants wake && step "embedded broker, another process's publish to a consumer" "$results/wake.json" \
    "$PY" -m bench.wake --out "$results/wake.json"
wants audit && step "audit trail: appends and lookups as it grows" "$results/audit_trail.json" \
    "$PY" -m bench.audit_trail "${trail[@]}" --out "$results/audit_trail.json"

printf '\n== summary (%s)\n' "$results/summary.json"
"$PY" -m bench.summary
if ((${#failed[@]})); then
    echo "bench.sh: failed: ${failed[*]}" >&2
    exit 1
fi
