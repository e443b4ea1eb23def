#!/usr/bin/env bash
# HTTP caching conformance: scores the example caching proxy
# (adapter-tower/examples/proxy.rs) with the suite http-cache-tests@0.4.5
# (cache-tests.fyi) through the runner in .ci/cache-tests/, and fails when
# the score falls below the floor in .ci/conformance-floor (the best score
# recorded so far: raise it as tests are fixed). Needs node and npm; curl
# is installed through apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
suite="$root/target/cache-tests/package"

if ! command -v curl >/dev/null; then
    apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
if [ ! -d "$suite/node_modules/node-fetch" ]; then
    rm -rf "$root/target/cache-tests"
    mkdir -p "$root/target/cache-tests"
    (cd "$root/target/cache-tests" &&
        npm pack --silent http-cache-tests@0.4.5 >/dev/null &&
        tar xzf http-cache-tests-0.4.5.tgz &&
        cd package && npm install --omit=dev --no-audit --no-fund --silent)
fi

cargo build --release --locked -p strata-tower --example proxy
# Free ports are picked, then released for the proxy to take: another
# process can grab one in between, so a proxy that cannot listen is
# started again on new ports (three tries).
proxy=""
trap 'if [ -n "$proxy" ]; then kill $proxy 2>/dev/null || true; fi' EXIT
for attempt in 1 2 3; do
    read -r proxy_port origin_port < <(python3 - <<'PY'
import socket
ports = []
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    ports.append(s.getsockname()[1])
print(*ports)
PY
)
    "$root/target/release/examples/proxy" --upstream "http://127.0.0.1:$origin_port" \
        --listen "127.0.0.1:$proxy_port" --store-unsized >"$root/target/cache-tests/proxy.log" 2>&1 &
    proxy=$!
    up=""
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null; then up=yes; break; fi
        kill -0 "$proxy" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$up" ] && break
    echo "conformance: the proxy did not come up (try $attempt):" >&2
    cat "$root/target/cache-tests/proxy.log" >&2
    kill "$proxy" 2>/dev/null || true
    proxy=""
done
[ -n "$proxy" ] || { echo "conformance: no proxy, giving up" >&2; exit 1; }

out="$root/target/cache-tests/out"
rm -rf "$out"
CACHE_TESTS_DIR="$suite" CACHE_TESTS_LABEL=strata-proxy \
    bash .ci/cache-tests/run.sh "http://127.0.0.1:$proxy_port" "$origin_port" "$out" | tail -4

python3 - "$out/summary.json" .ci/conformance-floor <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
tests = summary["tests"]
passed = sum(1 for t in tests if t["status"] == "pass")
required_failed = sum(1 for t in tests if t["kind"] == "required" and t["status"] == "fail")
floor = dict(line.split() for line in open(sys.argv[2]) if line.strip() and not line.startswith("#"))
need_passed, max_failed = int(floor["passed"]), int(floor["required_failed"])
print(f"conformance: {passed} passed (floor {need_passed}), "
      f"{required_failed} required failures (at most {max_failed})")
for t in tests:
    if t["kind"] == "required" and t["status"] == "fail":
        print(f"  required failure: {t['id']}: {t.get('message', '')}")
if passed < need_passed or required_failed > max_failed:
    sys.exit("conformance score fell below the floor in .ci/conformance-floor")
PY
