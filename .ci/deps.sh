#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine (Debian, Python 3.11+, root):
# Debian packages (redis-server, chromium), the Python package with its test extras, and the
# browser client's npm packages from its lock file. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
(cd web && npm ci --no-audit --no-fund --loglevel=error)
