#!/usr/bin/env bash
# The test command: `bash scripts/test.sh [pytest args...]`.
#
# 1. creates .venv if needed and (re)installs the project with its dev and bench extras when
#    pyproject.toml changed since the last install;
# 2. starts the private RabbitMQ node (scripts/rabbitmq.sh) unless RENKEI_TEST_AMQP_URL is
#    already set, and stops it at the end if this run started it (and no other run uses it);
# 3. runs ruff, mypy --strict (bus/, adapters/) and pytest; fails when any of them fails
#    (pytest's exit 5, "no tests collected", counts as a failure). pytest runs even when
#    lint failed, so one run shows every problem.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

step() { printf '\n== %s\n' "$*"; }

# -- 1. the virtualenv (scripts/venv.sh) --------------------------------------------------
source scripts/venv.sh dev,bench || exit 1  # bench: FastStream, for tests/bench's smoke

# -- 2. RabbitMQ -----------------------------------------------------------------------
if [[ -z "${RENKEI_TEST_AMQP_URL:-}" ]]; then
    step "starting RabbitMQ (scripts/rabbitmq.sh)"
    if url="$(bash scripts/rabbitmq.sh start --user $$)"; then
        export RENKEI_TEST_AMQP_URL="$url"
        trap 'bash scripts/rabbitmq.sh stop --user $$ >/dev/null 2>&1' EXIT
        echo "RENKEI_TEST_AMQP_URL=$url"
    else
        echo "RabbitMQ did not start: the tests marked amqp will skip (or fail when CI is set)"
    fi
fi

# -- 2b. PostgreSQL (scripts/postgres.sh), the same way; its stop joins the EXIT trap --------
if [[ -z "${RENKEI_TEST_POSTGRES_URL:-}" ]]; then
    step "starting PostgreSQL (scripts/postgres.sh)"
    if pg_url="$(bash scripts/postgres.sh start --user $$)"; then
        export RENKEI_TEST_POSTGRES_URL="$pg_url"
        prev_trap="$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")"
        trap "${prev_trap:+$prev_trap; }bash scripts/postgres.sh stop --user $$ >/dev/null 2>&1" EXIT
        echo "RENKEI_TEST_POSTGRES_URL=$pg_url"
    else
        echo "PostgreSQL did not start: the tests marked postgres will skip (or fail when CI is set)"
    fi
fi

# -- 2c. Debian's chromium for tests/browser (scripts/chromium.sh: apt-get as root when missing) --
step "chromium (scripts/chromium.sh)"
bash scripts/chromium.sh || echo "chromium is missing: the browser tests will skip (or fail when CI is set)"

# -- 3. lint, types, tests ---------------------------------------------------------------
lint_status=0
step "ruff check ."
"$VENV/bin/ruff" check . || lint_status=1
step "mypy --strict bus adapters"
"$VENV/bin/mypy" --strict bus adapters || lint_status=1

[[ $lint_status -ne 0 ]] && echo "ruff or mypy reported problems (see above)"

step "pytest"
"$VENV/bin/pytest" -p no:cacheprovider "$@"
status=$?
if [[ $status -eq 5 ]]; then
    status=1  # no tests collected
elif [[ $status -eq 0 && $lint_status -ne 0 ]]; then
    status=1
fi
exit "$status"
