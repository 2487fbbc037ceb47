#!/usr/bin/env bash
# Install the Debian packages azsql-bulk needs, and only those that are missing.
#   unixodbc, unixodbc-dev   ODBC driver manager (libodbc.so.2) and headers for turbodbc and the shim
#   libltdl7                 libtool loader unixODBC uses to dlopen drivers
#   libgssapi-krb5-2, libkrb5-3  linked by Microsoft's ODBC driver even without Kerberos
#   libboost-dev             headers turbodbc's C++ build needs
#   build-essential, cmake, pkg-config  compilers and build tools (turbodbc, the native shim)
#   curl, ca-certificates    fetching the pinned turbodbc sdist
#   nodejs, npm              run Azurite, the storage emulator of the remote-source tests
#                            (only when node or npm is missing; tested with Node.js 20)
set -euo pipefail

PACKAGES=(unixodbc unixodbc-dev libltdl7 libgssapi-krb5-2 libkrb5-3 libboost-dev
          build-essential cmake pkg-config curl ca-certificates)
# A target that needs more (make e2e-airflow: postgresql redis-server) names them here.
read -r -a EXTRA <<< "${EXTRA_PACKAGES:-}"
PACKAGES+=("${EXTRA[@]}")

PY=${PYTHON:-python3.11}
# A Debian system Python needs these for venvs and C extensions; a pyenv or
# self-built Python already has them.
if ! "$PY" -c 'import ensurepip, venv, sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null; then
    PACKAGES+=(python3-venv python3-dev)
fi
# A Node.js from elsewhere (nodesource, nvm) is fine; Debian's only when there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "[setup-system] all Debian packages present"
    exit 0
fi

echo "[setup-system] installing: ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "[setup-system] run as root or install sudo, or install: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
