#!/usr/bin/env bash
# The example caching proxy against nginx proxy_cache, same origin, same
# object, same machine, alternating runs: wrk, 2 threads, 64 connections,
# 10 s each, on one cached 1 KiB response. Prints requests/s and p99 per run
# and the median ratio. Installs nginx-light and wrk through apt-get when
# missing. Loopback only; everything it starts is stopped on exit.
#
#   benches/scripts/proxy_vs_nginx.sh [ROUNDS]     (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nginx-light wrk >/dev/null
fi
cargo build --release --locked -p strata-tower --example proxy
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers (www-data) read the object
origin_port=18901 nginx_port=18902 strata_port=18903
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/obj"
mkdir -p "$work/cache" "$work/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    proxy_cache_path $work/cache keys_zone=bench:10m max_size=100m;
    server {
        listen 127.0.0.1:$origin_port;
        location = /obj { alias $work/obj; default_type application/octet-stream; add_header Cache-Control "max-age=3600"; }
    }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://127.0.0.1:$origin_port;
            proxy_cache bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
CONF
nginx -c "$work/nginx.conf"
./target/release/examples/proxy --upstream "http://127.0.0.1:$origin_port" \
    --listen "127.0.0.1:$strata_port" >"$work/logs/proxy.log" 2>&1 &
proxy=$!
cleanup() {
    kill "$proxy" 2>/dev/null || true
    nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
sleep 1
for port in $nginx_port $strata_port; do
    curl -s -o /dev/null "http://127.0.0.1:$port/obj"
    headers=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/obj")
    echo "$headers" | grep -iE "^HTTP|x-cache|cache-status" || true
    # Measure only cached 200s (a 403 from a permission slip is fast too).
    if ! echo "$headers" | grep -q "^HTTP/1.1 200" || ! echo "$headers" | grep -qiE "x-cache: HIT|cache-status: strata; hit"; then
        echo "port $port does not serve the object from its cache; not measuring" >&2
        exit 1
    fi
done
run() {
    wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$1/obj" |
        awk '/Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} END {print rps, p99}'
}
results=()
for round in $(seq 1 "$rounds"); do
    read -r n_rps n_p99 < <(run $nginx_port)
    read -r s_rps s_p99 < <(run $strata_port)
    echo "round $round: nginx $n_rps req/s (p99 $n_p99), strata $s_rps req/s (p99 $s_p99)"
    results+=("$(python3 -c "print($s_rps / $n_rps)")")
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median ratio strata/nginx: %.2f\n", a[int((NR+1)/2)]}'
