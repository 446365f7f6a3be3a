#!/usr/bin/env bash
# Install whatever pgbaton's tests, demo and benchmarks need and is missing.
# Quick when everything is present.  Usage: scripts/bootstrap.sh [--pacemaker]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server mariadb-client)
command -v pgbouncer >/dev/null 2>&1 || need_apt+=(pgbouncer)
command -v sysbench >/dev/null 2>&1 || need_apt+=(sysbench)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql-15 postgresql-client-15)
# PostGIS for the replica's spatial columns (geometry + GiST; tests/integration/test_spatial.py)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || need_apt+=(postgresql-15-postgis-3)
# headless browser for the status page test (tests/integration/test_serve_page.py)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ "${1:-}" = "--pacemaker" ] || [ "${PGBATON_PACEMAKER:-}" = "1" ]; then
  command -v pacemakerd >/dev/null 2>&1 || need_apt+=(pacemaker corosync crmsh resource-agents)
  command -v ocf-tester >/dev/null 2>&1 || need_apt+=(resource-agents)
  command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.pgbaton-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
