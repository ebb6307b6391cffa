#!/usr/bin/env bash
# The first command: `bash scripts/demo.sh [renkei demo options]`.
# Sets up .venv on first use (scripts/venv.sh), then runs `renkei demo` on the embedded
# broker: nothing else to install, no server to start.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
source scripts/venv.sh "" || exit 1  # "": no extras (and not this script's own arguments)
exec "$VENV/bin/renkei" demo "$@"
