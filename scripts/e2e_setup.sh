#!/usr/bin/env bash
# The Debian packages `make e2e-airflow` runs, installed only when missing:
#   postgresql     Airflow's metadata database (the script initdb's a cluster of its own;
#                  Debian's own cluster and service are not used)
#   redis-server   the Celery broker (started by the script on a port of its own)
set -euo pipefail

missing=()
for pkg in postgresql redis-server; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "[e2e-setup] postgresql and redis-server present"
    exit 0
fi
echo "[e2e-setup] installing: ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "[e2e-setup] run as root or install sudo, or install: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
