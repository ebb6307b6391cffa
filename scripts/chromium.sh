#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/browser/, driven by Playwright for Python):
# `bash scripts/chromium.sh` installs it with apt-get when /usr/bin/chromium is missing and we
# run as root; prints its path. Nothing is downloaded from anywhere but Debian's mirrors
# (never `playwright install`). Exit 1 when it is missing and cannot be installed.
set -euo pipefail

CHROMIUM="${RENKEI_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing chromium (apt-get)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
    else
        echo "chromium is missing: run 'apt-get install chromium fonts-noto-cjk' as root" >&2
        exit 1
    fi
fi
echo "$CHROMIUM"
