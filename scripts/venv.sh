#!/usr/bin/env bash
# Make sure .venv exists and holds this checkout of renkei: `source scripts/venv.sh ""` or
# `source scripts/venv.sh dev` (always pass the argument: `source` alone hands on the caller's).
#
# Creates .venv with python3 (3.11 or newer) when missing — on a fresh Debian, where
# `python3 -m venv` needs the python3-venv package, it installs that first when run as root —
# and (re)installs the project (with the dev extras when asked) whenever pyproject.toml
# changed since the last install. Sets VENV and PY for the caller.

_renkei_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$_renkei_root/.venv"
PY="$VENV/bin/python"

_renkei_venv() {
    local extras="${1:-}"
    if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "renkei needs Python 3.11 or newer as python3 (Debian 12: apt-get install python3)" >&2
            return 1
        fi
        echo "== creating .venv" >&2
        rm -rf "$VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
                echo "== installing python3-venv (apt-get)" >&2
                DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
                    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
                rm -rf "$VENV"
                python3 -m venv "$VENV" || return 1
            else
                echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2
                return 1
            fi
        fi
    fi
    local stamp="$VENV/.renkei-installed" spec="." wanted have
    [[ -n "$extras" ]] && spec=".[$extras]"
    wanted="$(sha256sum <"$_renkei_root/pyproject.toml" | cut -d' ' -f1) $spec"
    have="$(cat "$stamp" 2>/dev/null || true)"
    # an install with extras also serves a plain one
    if [[ "$have" != "$wanted" && ( -n "$extras" || "${have%% *}" != "${wanted%% *}" ) ]]; then
        # pip's own output (progress, setuptools' editable-install warning, index notes) goes to
        # a log, shown only when the install fails: the demo's output is the demo's
        local log="$VENV/install.log"
        echo "== installing renkei ($spec) into .venv (a minute or two, once; pip's output: .venv/install.log)" >&2
        "$PY" -m pip install -q --upgrade pip >"$log" 2>&1
        if ! (cd "$_renkei_root" && "$PY" -m pip install -q -e "$spec") >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            echo "pip install -e '$spec' failed (the whole output: $log)" >&2
            return 1
        fi
        echo "$wanted" >"$stamp"
    fi
}
_renkei_venv "$@"
