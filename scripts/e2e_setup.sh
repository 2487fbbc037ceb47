#!/usr/bin/env bash
# The Debian packages `make e2e-airflow` runs, besides what `make setup` installs, installed
# only when missing (by scripts/setup-system.sh):
#   postgresql     Airflow's metadata database (the script initdb's a cluster of its own;
#                  Debian's own cluster and service are not used)
#   redis-server   the Celery broker (started by the script on a port of its own)
set -euo pipefail
EXTRA_PACKAGES="postgresql redis-server" exec bash "$(dirname "$0")/setup-system.sh"
