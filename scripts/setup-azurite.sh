#!/usr/bin/env bash
# Install Azurite (Microsoft's Azure Storage emulator, npm package "azurite") for the
# remote-source tests and benchmark, outside the repository, and only when missing.
#   needs: node and npm (scripts/setup-system.sh installs Debian's nodejs and npm)
#   where: $AZSQL_BULK_CACHE/azurite-<version>/node_modules/.bin/azurite
#          (default ~/.cache/azsql-bulk); the test fixture looks there, or at $AZURITE.
set -euo pipefail

AZURITE_VERSION=3.35.0  # declares node >=10 (3.37 declares >=22; Debian 12 ships 18)
CACHE_ROOT=${AZSQL_BULK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azsql-bulk}
PREFIX="$CACHE_ROOT/azurite-$AZURITE_VERSION"
BIN="$PREFIX/node_modules/.bin/azurite"

log() { printf '[setup-azurite] %s\n' "$*"; }

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
    log "azurite $AZURITE_VERSION already installed in $PREFIX"
    exit 0
fi
command -v npm >/dev/null || { log "npm is missing: run scripts/setup-system.sh (it installs nodejs and npm)" >&2; exit 1; }

log "installing azurite $AZURITE_VERSION into $PREFIX"
mkdir -p "$PREFIX"
# --prefix keeps it out of the global node_modules; no audit/fund chatter, no scripts
# beyond the package's own.
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" >/dev/null
"$BIN" --version >/dev/null
log "azurite $("$BIN" --version) installed"
