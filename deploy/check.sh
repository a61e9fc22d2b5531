#!/usr/bin/env bash
# Validates the deployment files with the tools this machine has. Runnable from any folder:
#
#   deploy/check.sh
#
# Required: promtool (Debian package `prometheus`), python3.
# Optional (skipped with a message when absent): systemd-analyze, docker compose, PyYAML.
# PHALANX_BIN=/path/to/phalanx: the binary the systemd unit check points ExecStart at (default:
# /usr/local/bin/phalanx, then target/release/phalanx, then a stand-in; see check_systemd).
#
# Runs every check, prints a summary, and exits non-zero if any check failed.
set -euo pipefail

deploy="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$deploy/.." && pwd)"
prom="$deploy/prometheus"
dashboard="$deploy/grafana/dashboards/phalanx.json"
datasource="$deploy/grafana/provisioning/datasources/prometheus.yml"
unit="$deploy/systemd/phalanx@.service"

passed=0
failed=0
skipped=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; passed=$((passed + 1)); }
bad() { printf '    FAILED: %s\n' "$*" >&2; failed=$((failed + 1)); }
skip() { printf '    skipped: %s\n' "$*"; skipped=$((skipped + 1)); }
have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command, indenting its output; records ok/FAILED under the given name.
check() {
    local name="$1"
    shift
    if "$@" 2>&1 | sed 's/^/    | /'; then ok "$name"; else bad "$name"; fi
}

check_prometheus() {
    say "Prometheus configuration, rules and rule unit tests"
    if ! have promtool; then
        bad "promtool not found (apt-get install prometheus)"
        return
    fi
    # rule_files (alerts.yml) resolve relative to each file's own folder, whatever the cwd.
    check "promtool check config prometheus.yml" promtool check config "$prom/prometheus.yml"
    check "promtool check rules alerts.yml" promtool check rules "$prom/alerts.yml"
    check "promtool test rules alerts_test.yml" promtool test rules "$prom/alerts_test.yml"
}

check_dashboard() {
    say "Grafana dashboard and provisioning"
    if ! have python3; then
        bad "python3 not found"
        return
    fi
    check "dashboard is valid JSON" python3 -m json.tool "$dashboard" /dev/null

    # Structure: unique panel ids, every query on the provisioned datasource uid. Writes every
    # PromQL expression (Grafana variables replaced by sample values) as a recording rule, so
    # that promtool parses the dashboard's queries too.
    check "dashboard panels use the provisioned datasource" python3 - "$dashboard" "$datasource" "$work/dashboard_rules.yml" <<'PY'
import json, re, sys
dash_path, ds_path, rules_path = sys.argv[1:4]
dash = json.load(open(dash_path))
m = re.search(r'^\s*uid:\s*(\S+)\s*$', open(ds_path).read(), re.M)
if not m:
    sys.exit(f"no uid in {ds_path}")
uid = m.group(1).strip('"\'')
errors, exprs, ids = [], [], []
def walk(panels):
    for p in panels:
        ids.append(p.get("id"))
        walk(p.get("panels", []))
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != uid:
            errors.append(f"panel {p.get('title')!r}: datasource uid is not {uid!r}")
        if not p.get("targets"):
            errors.append(f"panel {p.get('title')!r}: no queries")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != uid:
                errors.append(f"panel {p.get('title')!r} query {t.get('refId')}: datasource uid is not {uid!r}")
            exprs.append((p.get("title"), t.get("expr", "")))
walk(dash.get("panels", []))
for v in dash.get("templating", {}).get("list", []):
    if v.get("datasource", {}).get("uid") not in (None, uid):
        errors.append(f"variable {v.get('name')!r}: datasource uid is not {uid!r}")
    q = v.get("query", {})
    q = q.get("query", "") if isinstance(q, dict) else q
    lv = re.fullmatch(r'label_values\((.+),\s*\w+\)', q or "")
    if lv:
        exprs.append((f"variable {v.get('name')}", lv.group(1)))
dups = sorted({i for i in ids if ids.count(i) > 1})
if dups:
    errors.append(f"duplicate panel ids: {dups}")
if any(i is None for i in ids):
    errors.append("a panel has no id")
subst = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}
with open(rules_path, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        if not e.strip():
            errors.append(f"panel {title!r}: empty query")
            continue
        for k, val in subst.items():
            e = e.replace(k, val)
        if "$" in e.replace("$1", ""):
            errors.append(f"panel {title!r}: unknown variable in {e!r}")
        f.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
for e in errors:
    print(e)
print(f"{len(ids)} panels, {len(exprs)} queries, datasource uid {uid}")
sys.exit(1 if errors else 0)
PY
    if have promtool && [ -s "$work/dashboard_rules.yml" ]; then
        check "dashboard queries parse as PromQL" promtool check rules "$work/dashboard_rules.yml"
    fi

    # The metric names the dashboard and the alerts read must be ones the node registers.
    local metrics_rs="$repo/crates/node/src/metrics.rs"
    if [ -f "$metrics_rs" ]; then
        check "metric names are registered in crates/node/src/metrics.rs" python3 - "$metrics_rs" "$dashboard" "$prom/alerts.yml" <<'PY'
import re, sys
source = open(sys.argv[1]).read()
registered = set(re.findall(r'"([a-z_]+)"', source))
used = set()
for path in sys.argv[2:]:
    used |= set(re.findall(r'\b((?:phalanx|process)_[a-z_]+)', open(path).read()))
missing = []
for name in sorted(used):
    base = name
    for suffix in ("_bucket", "_sum", "_count", "_total", "_seconds", "_bytes"):
        base = base[: -len(suffix)] if base.endswith(suffix) else base
    # Registered inside the `phalanx` sub-registry without the prefix; process_* in full.
    short = base[len("phalanx_"):] if base.startswith("phalanx_") else base
    if not {name, base, short} & registered:
        missing.append(name)
for name in missing:
    print(f"not registered: {name}")
print(f"{len(used)} metric names checked")
sys.exit(1 if missing else 0)
PY
    else
        skip "metric names: $metrics_rs not found"
    fi

    if python3 -c 'import yaml' 2>/dev/null; then
        check "YAML files parse" python3 - "$deploy" <<'PY'
import pathlib, sys, yaml
bad = 0
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.yml")):
    try:
        yaml.safe_load(p.read_text())
        print(f"{p.relative_to(sys.argv[1])}")
    except yaml.YAMLError as e:
        print(f"{p}: {e}")
        bad += 1
sys.exit(1 if bad else 0)
PY
    else
        skip "YAML parsing: PyYAML not installed"
    fi
}

check_systemd() {
    say "systemd unit"
    if ! have systemd-analyze; then
        skip "systemd-analyze not found"
        return
    fi
    # `verify` insists that ExecStart's binary exists, which says nothing about the unit file
    # itself. Verify a copy whose ExecStart names, in order: $PHALANX_BIN, the installed
    # binary, this tree's release build, or a stand-in (every other check still applies).
    local bin=""
    if [ -n "${PHALANX_BIN:-}" ]; then
        if [ ! -x "$PHALANX_BIN" ]; then
            bad "PHALANX_BIN=$PHALANX_BIN is not an executable file"
            return
        fi
        bin="$(cd "$(dirname "$PHALANX_BIN")" && pwd)/$(basename "$PHALANX_BIN")"
    elif [ -x /usr/local/bin/phalanx ]; then
        bin=/usr/local/bin/phalanx
    elif [ -x "$repo/target/release/phalanx" ]; then
        bin="$repo/target/release/phalanx"
    else
        bin="$(type -P true)"
        echo "    note: no phalanx binary (set PHALANX_BIN); ExecStart points at $bin for this check"
    fi
    echo "    ExecStart for this check: $bin"
    local dir="$work/units"
    mkdir -p "$dir"
    sed "s#^ExecStart=/usr/local/bin/phalanx #ExecStart=$bin #" "$unit" >"$dir/phalanx@.service"
    if ! grep -q "^ExecStart=$bin " "$dir/phalanx@.service"; then
        bad "ExecStart does not start with /usr/local/bin/phalanx"
        return
    fi
    # An instance, as systemctl would load it. verify exits 0 on directives it ignores (an
    # unknown key, an unparsable value), yet a typo there silently drops a protection: any
    # message about this unit fails the check. Messages about other units (this host's own
    # targets) are shown but do not count.
    local instance="phalanx@bft-agent-1.service"
    local args=(verify --man=no)
    if systemd-analyze --help 2>/dev/null | grep -q -- '--recursive-errors'; then
        args+=(--recursive-errors=no)
    fi
    local out rc=0
    out="$(cd "$dir" && systemd-analyze "${args[@]}" "./$instance" 2>&1)" || rc=$?
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    | /'
    if [ "$rc" -ne 0 ] || printf '%s\n' "$out" | grep -qE "phalanx@(bft-agent-1)?\.service"; then
        bad "systemd-analyze verify $instance (exit $rc)"
    else
        ok "systemd-analyze verify $instance"
    fi
    # The hardening, scored offline (0 = most confined, 10 = none; 100 = 10.0 for --threshold).
    # The unit scores about 1.4; fail if an edit loosens it past 2.0.
    if systemd-analyze --help 2>/dev/null | grep -q -- '--offline'; then
        out="$(cd "$dir" && systemd-analyze security --offline=yes --threshold=20 --no-pager "./$instance" 2>&1)" \
            && rc=0 || rc=$?
        printf '%s\n' "$out" | grep -E 'Overall exposure' | sed 's/^/    | /' || true
        if [ "$rc" -eq 0 ]; then ok "systemd-analyze security: exposure at most 2.0"; else bad "systemd-analyze security --threshold=20 (exit $rc)"; fi
    else
        skip "systemd-analyze security --offline: needs systemd 250 or later"
    fi
}

check_compose() {
    say "docker compose file"
    # What docker compose cannot see: that the files agree with each other. Runs with or
    # without docker.
    if have python3 && python3 -c 'import yaml' 2>/dev/null; then
        check "compose file agrees with prometheus.yml and its own references" python3 - "$deploy" <<'PY'
import ipaddress, pathlib, re, sys, yaml
deploy = pathlib.Path(sys.argv[1])
c = yaml.safe_load((deploy / "docker-compose.yml").read_text())
prom = yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
errors = []
services, networks, volumes = c.get("services", {}), c.get("networks", {}), c.get("volumes", {})
nodes = {n: s for n, s in services.items() if n.startswith("bft-agent-")}
if sorted(nodes) != [f"bft-agent-{i}" for i in range(1, 5)]:
    errors.append(f"expected services bft-agent-1..4, found {sorted(nodes)}")
subnet = ipaddress.ip_network(networks["phalanx"]["ipam"]["config"][0]["subnet"])
auto = networks["phalanx"]["ipam"]["config"][0].get("ip_range")
init_cmd = " ".join(services["init"].get("command", []))
hosts = re.search(r"--hosts\s+(\S+)", init_cmd)
hosts = hosts.group(1).split(",") if hosts else []
targets = [t for j in prom["scrape_configs"] if j["job_name"] == "phalanx"
           for sc in j["static_configs"] for t in sc["targets"]]
ports = []
for i, (name, s) in enumerate(sorted(nodes.items()), start=1):
    ip = s["networks"]["phalanx"]["ipv4_address"]
    if ipaddress.ip_address(ip) not in subnet:
        errors.append(f"{name}: {ip} is outside {subnet}")
    if auto and ipaddress.ip_address(ip) in ipaddress.ip_network(auto):
        errors.append(f"{name}: {ip} is inside the automatic range {auto}")
    if i > len(hosts) or hosts[i - 1] != ip:
        errors.append(f"{name}: {ip} is not the {i}th address of init --hosts {hosts}")
    if f"{ip}:7200" not in targets:
        errors.append(f"{name}: {ip}:7200 is not a Prometheus target ({targets})")
    if s.get("environment", {}).get("PHALANX_HTTP") != f"{ip}:7200":
        errors.append(f"{name}: PHALANX_HTTP is not {ip}:7200")
    if f"/cluster/nodes/{name}.toml" not in s.get("command", []):
        errors.append(f"{name}: does not run /cluster/nodes/{name}.toml")
    cond = s.get("depends_on", {}).get("init", {}).get("condition")
    if cond != "service_completed_successfully":
        errors.append(f"{name}: depends_on init has condition {cond!r}")
    ports += [p.split(":")[0] for p in s.get("ports", [])]
if sorted(ports) != ["7201", "7202", "7203", "7204"]:
    errors.append(f"node host ports are {ports}, expected 7201..7204")
if len(targets) != len(nodes):
    errors.append(f"Prometheus scrapes {len(targets)} nodes, compose runs {len(nodes)}")
for name, s in services.items():
    for dep in s.get("depends_on", {}) or {}:
        if dep not in services:
            errors.append(f"{name}: depends on unknown service {dep}")
    for net in (s.get("networks") or {}):
        if net not in networks:
            errors.append(f"{name}: unknown network {net}")
    b = s.get("build")
    if b and not (deploy / b["context"] / b.get("dockerfile", "Dockerfile")).is_file():
        errors.append(f"{name}: no Dockerfile at {b}")
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            if not (deploy / src).exists():
                errors.append(f"{name}: bind mount source {src} does not exist")
        elif src not in volumes:
            errors.append(f"{name}: volume {src} is not declared")
for e in errors:
    print(e)
print(f"{len(services)} services, {len(targets)} scrape targets")
sys.exit(1 if errors else 0)
PY
    else
        skip "compose consistency: PyYAML not installed"
    fi
    local compose=()
    if have docker && docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    elif have docker-compose && docker-compose version >/dev/null 2>&1; then
        compose=(docker-compose)
    else
        skip "docker compose is not available here (\`docker compose config -q\` not run)"
        return
    fi
    check "${compose[*]} config -q" "${compose[@]}" -f "$deploy/docker-compose.yml" config -q
}

check_prometheus
check_dashboard
check_systemd
check_compose

printf '\n%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
