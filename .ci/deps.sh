#!/usr/bin/env bash
# Install what the test suite needs beyond Python packages on a fresh machine (Debian, root):
# Debian packages (python3-venv for the project's .venv, redis-server, chromium, nginx for the
# proxy test, node and npm) and the browser client's npm packages from its lock file. The
# Python packages go into .venv (the Makefile). Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

(cd web && npm ci --no-audit --no-fund --loglevel=error)
(cd benchmarks/node && npm ci --no-audit --no-fund --loglevel=error)
