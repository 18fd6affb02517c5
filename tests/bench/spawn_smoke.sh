#!/usr/bin/env bash
# Smoke test of bench/spawn: a --quick run into a temporary directory (never
# bench/results/), then checks that what it wrote is well-formed: the JSON
# parses and has every method and size with positive, ordered numbers, the
# markdown has a row per method and the target verdict, and no scoreboard
# segment of a finished spawn-cost is left in /dev/shm.
#   usage: spawn_smoke.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: spawn_smoke.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=smoke_common.sh
source "$root/tests/bench/smoke_common.sh"
expect_flag_error "$build/bin/spawn-cost" --no-such-flag
expect_flag_error "$build/bin/spawn-cost" replace --server "$build/bin/upper_server" --iterations
make_scratch spawn
run_quick spawn --build "$build"

python3 - "$out" <<'PY'
import json, os, re, shutil, sys

out = sys.argv[1]
methods = ["fork", "fork+exec", "vfork+exec", "posix_spawn", "boost_process_v2", "pthread_create"]
sizes = [1, 64]
problems = []

def check_summary(what, s, n=None):
    keys = ("median", "p90", "p99", "min", "max")
    if not isinstance(s, dict) or any(not isinstance(s.get(k), (int, float)) for k in keys + ("n",)):
        problems.append(f"{what}: not a summary: {s!r}")
        return
    if any(s[k] <= 0 for k in keys + ("n",)):
        problems.append(f"{what}: a number is not positive: {s}")
    if not s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"]:
        problems.append(f"{what}: percentiles out of order: {s}")
    if n is not None and s["n"] != n:
        problems.append(f"{what}: n = {s['n']}, expected {n}")

with open(os.path.join(out, "spawn.json")) as f:
    data = json.load(f)
results = data["creation"]["results"]
for method in methods:
    for mib in sizes:
        found = [r for r in results if r["method"] == method and r["region_mib"] == mib]
        if len(found) != 1:
            problems.append(f"creation: {len(found)} results for {method} at {mib} MiB")
            continue
        r = found[0]
        if not r["rss_mib"] >= mib:
            problems.append(f"creation: {method} at {mib} MiB: parent RSS {r['rss_mib']} MiB")
        check_summary(f"{method} {mib} MiB reaped", r["reap_us"])
        check_summary(f"{method} {mib} MiB running", r["start_us"])
kinds = [run["exec_target"]["kind"] for run in data["exec_targets"]]
if len(kinds) != 3:
    problems.append(f"exec targets: {kinds}")
for run in data["exec_targets"]:
    for r in run["results"]:
        check_summary(f"exec target {run['exec_target']['path']} reaped", r["reap_us"])
        if run["exec_target"]["stamps"]:
            check_summary(f"exec target {run['exec_target']['path']} running", r["start_us"])
for r in data["huge_pages"]["results"]:
    check_summary(f"huge pages {r['method']}", r["reap_us"])
for mode in ("fork", "spawn"):
    r = data["replace"][mode]
    for key in ("death_to_exited_us", "death_to_started_us", "started_to_ready_us",
                "death_to_ready_us", "death_to_served_us"):
        check_summary(f"replace {mode} {key}", r[key], 20)
    if r["delayed_restarts"] != 0:
        problems.append(f"replace {mode}: {r['delayed_restarts']} restarts delayed by backoff")

with open(os.path.join(out, "spawn.md")) as f:
    md = f.read()
for method in methods:
    rows = re.findall(r"^\| " + re.escape(method) + r" \|", md, re.M)
    if len(rows) < 2 + len(sizes):  # two median tables, one row per size in the full table
        problems.append(f"spawn.md: {len(rows)} table rows for {method}")
for mode in ("fork", "spawn"):
    if not re.search(r"^\| " + mode + r" \| replacement ready \| 20 \|", md, re.M):
        problems.append(f"spawn.md: no replacement row for {mode}")
if not re.search(r"5 ms \(p99\) of its death in fork mode: (met|NOT met)", md):
    problems.append("spawn.md: no verdict on the 5 ms target")
if "## Machine" not in md or "## Why" not in md:
    problems.append("spawn.md: a section is missing")
if shutil.which("gnuplot"):
    with open(os.path.join(out, "spawn.png"), "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            problems.append("spawn.png is not a PNG")

# A segment named after a spawn-cost that no longer runs was left behind.
for name in os.listdir("/dev/shm"):
    m = re.fullmatch(r"prefork_spawncost_(\d+)", name)
    if m and not os.path.exists(f"/proc/{m.group(1)}"):
        problems.append(f"/dev/shm/{name} left behind")

for p in problems:
    print("spawn_smoke: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
echo "spawn_smoke: ok"
