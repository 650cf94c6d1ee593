#!/usr/bin/env bash
# Installs Vigil into ./.venv on a fresh Debian machine with Python 3.11+.
#   bash scripts/install.sh          # runtime only
#   bash scripts/install.sh --test   # plus test tools (and, as root, Debian packages the e2e tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
with_test=0
[ "${1:-}" = "--test" ] && with_test=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "error: Vigil needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' 2>/dev/null; then
  echo "installing python3-venv (Debian) ..." >&2
  as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ $with_test = 1 ]; then
  # the integration tests run the real thing: Prometheus, node-exporter, Alertmanager and
  # VictoriaMetrics from Debian's packages (services are not started by the install)
  debs="prometheus prometheus-node-exporter prometheus-alertmanager victoria-metrics"
  missing=""
  for b in prometheus prometheus-node-exporter prometheus-alertmanager victoria-metrics; do
    command -v "$b" >/dev/null || missing=1
  done
  if [ -n "$missing" ]; then
    echo "installing $debs (Debian) ..." >&2
    if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install \
        -y -qq --no-install-recommends $debs >/dev/null; }; then
      echo "warning: could not install $debs; the integration tests will be skipped" >&2
    fi
  fi
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
echo "installed: $(.venv/bin/vigil --version 2>/dev/null || echo vigil) in .venv" >&2
