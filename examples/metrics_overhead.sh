#!/usr/bin/env bash
# What the metrics cost at saturation: two builds of `phalanx`, run alternately on fresh 4-agent
# clusters (closed loop, 64 clients, 10 s measured after 2 s of warm-up). With SCRAPE=1 (the
# default) every node's /metrics is read once a second during the runs of the second build, as a
# Prometheus would (a 1 s interval is five times the usual 5 s).
#
#   examples/metrics_overhead.sh BEFORE_BIN AFTER_BIN [ROUNDS]
#
# Prints each run's committed transfers per second and the nodes' CPU time per transfer (less
# noisy on a shared machine), then the medians and their ratios.
set -euo pipefail
before=$1 after=$2 rounds=${3:-5}
scrape=${SCRAPE:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # BIN SCRAPE → "tx/s cpu-µs/tx"
  local bin=$1 scrape=$2 dir="$work/c$RANDOM" base=$((24000 + RANDOM % 4000)) scraper=""
  "$bin" init --agents 4 --dir "$dir" --base-port "$base" --bench-clients 64 >/dev/null
  "$bin" up --dir "$dir" >/dev/null
  if [ "$scrape" = 1 ]; then
    # One long-lived scraper (a process per request would cost the shared cores more than the
    # scrapes themselves).
    python3 - "$base" <<'PY' &
import sys, time, urllib.request
base = int(sys.argv[1])
while True:
    for i in range(4):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{base + 100 + i}/metrics", timeout=2).read()
        except OSError:
            pass
    time.sleep(1)
PY
    scraper=$!
  fi
  "$bin" bench --dir "$dir" --clients 64 --duration 10s --warmup 2s --json | tail -n 1 |
    python3 -c 'import json, os, sys
r = json.load(sys.stdin)
print(r["tx_per_sec"], round(r["cpu_pct"] / 100 * os.cpu_count() * 1e6 / r["tx_per_sec"], 1))'
  [ -n "$scraper" ] && kill "$scraper"
  "$bin" down --dir "$dir" --kill >/dev/null
  rm -rf "$dir"
}

a=() b=()
for r in $(seq "$rounds"); do
  # Alternate which build goes first, so that neither always runs on a warmer machine.
  if [ $((r % 2)) = 1 ]; then
    a+=("$(run "$before" 0)")
    b+=("$(run "$after" "$scrape")")
  else
    b+=("$(run "$after" "$scrape")")
    a+=("$(run "$before" 0)")
  fi
  echo "round $r: before ${a[-1]}, after ${b[-1]} (tx/s, node CPU µs per tx)"
done
python3 - "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
def pairs(s):
    v = [float(x) for x in s.split()]
    return v[0::2], v[1::2]
(ta, ca), (tb, cb) = pairs(sys.argv[1]), pairs(sys.argv[2])
m = statistics.median
print(f"throughput: median before {m(ta):.0f} tx/s, after {m(tb):.0f} tx/s, after/before {m(tb) / m(ta):.3f}")
print(f"node CPU per transfer: median before {m(ca):.1f} µs, after {m(cb):.1f} µs, after/before {m(cb) / m(ca):.3f}")
PY
