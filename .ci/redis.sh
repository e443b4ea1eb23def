#!/usr/bin/env bash
# Makes sure redis-server and redis-cli (Debian: redis-server, redis-tools)
# are installed: the strata-redis tests start their own servers, and CI
# must run them, not skip them (STRATA_REQUIRE_REDIS, set by .ci/run).
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
redis-server --version
