#!/usr/bin/env bash
# What the metrics cost at saturation: two builds of `phalanx`, run alternately on fresh 4-agent
# clusters (closed loop, 64 clients, 10 s measured after 2 s of warm-up). With SCRAPE=1 (the
# default) every node's /metrics is read once a second during the runs of the second build, as a
# Prometheus would (a 1 s interval is five times the usual 5 s).
#
#   examples/metrics_overhead.sh BEFORE_BIN AFTER_BIN [ROUNDS]
#
# Prints each run's committed transfers per second, then the medians and their ratio.
set -euo pipefail
before=$1 after=$2 rounds=${3:-5}
scrape=${SCRAPE:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # BIN SCRAPE → tx/s
  local bin=$1 scrape=$2 dir="$work/c$RANDOM" base=$((24000 + RANDOM % 4000)) scraper=""
  "$bin" init --agents 4 --dir "$dir" --base-port "$base" --bench-clients 64 >/dev/null
  "$bin" up --dir "$dir" >/dev/null
  if [ "$scrape" = 1 ]; then
    (while true; do
      for i in 0 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$((base + 100 + i))/metrics" || true; done
      sleep 1
    done) &
    scraper=$!
  fi
  "$bin" bench --dir "$dir" --clients 64 --duration 10s --warmup 2s --json | tail -n 1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["tx_per_sec"])'
  [ -n "$scraper" ] && kill "$scraper"
  "$bin" down --dir "$dir" --kill >/dev/null
  rm -rf "$dir"
}

a=() b=()
for r in $(seq "$rounds"); do
  a+=("$(run "$before" 0)")
  b+=("$(run "$after" "$scrape")")
  echo "round $r: before ${a[-1]} tx/s, after ${b[-1]} tx/s"
done
python3 - "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"median before {ma:.0f} tx/s, after {mb:.0f} tx/s, after/before {mb / ma:.3f}")
PY
