#!/usr/bin/env bash
# Smoke test of bench/overhead: a --quick run into a temporary directory (never
# bench/results/), then checks that what it wrote is well-formed: overhead.json
# parses, every workload has both sides (--worker-stats on and off) with
# non-zero throughput and CPU per request, no run reported a problem (which
# includes "off left the counters at 0, on counted every request"); overhead.md
# has the target line and the sections; the callgrind section has figures when
# valgrind is installed and says it was skipped when not; and no scoreboard
# segment of the run is left in /dev/shm.
#   usage: overhead_smoke.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: overhead_smoke.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=smoke_common.sh
source "$root/tests/bench/smoke_common.sh"
make_scratch overhead
expect_usage_error overhead

# Valgrind cannot run sanitizer builds: no instruction count there.
# PREFORK_SANITIZE is ON, address or thread in such a tree (BOOL or STRING).
extra=()
sanitized=0
if grep -E '^PREFORK_SANITIZE:[A-Z]+=' "$build/CMakeCache.txt" 2>/dev/null |
  grep -Eqiv '=(off|false|no|n|0|)$'; then
  extra=(--no-callgrind)
  sanitized=1
fi

run_quick overhead --build "$build" "${extra[@]}"

python3 - "$out" "$sanitized" <<'PY'
import json, os, re, shutil, sys

out = sys.argv[1]
sanitized = sys.argv[2] == "1"
problems = []
with open(os.path.join(out, "overhead.json")) as f:
    data = json.load(f)
variants = [v["key"] for v in data["parameters"]["variants"]]
if "framed-pinned" not in variants:
    problems.append(f"overhead.json: no framed-pinned workload in {variants}")
for key in variants:
    s = data["summary"].get(key)
    if not s:
        problems.append(f"overhead.json: no summary for {key}")
        continue
    for side in ("on", "off"):
        t = s.get(side) or {}
        tp, cpu = t.get("throughput_rps"), t.get("cpu_us_per_request")
        if not tp or not tp["median"] > 0:
            problems.append(f"overhead.json: {key} {side}: throughput {tp}")
        if not cpu or not cpu["median"] > 0:
            problems.append(f"overhead.json: {key} {side}: CPU per request {cpu}")
    if not s.get("overhead_pct") or not s["pairs_used"] > 0:
        problems.append(f"overhead.json: {key}: no on/off pair")
if not data["bursts"]:
    problems.append("overhead.json: no bursts")
for r in data["bursts"]:
    if r.get("errors", 1) != 0 or not r.get("throughput_rps", 0) > 0 or r.get("problem"):
        problems.append(f"overhead.json: burst {r['variant']} round {r['round']} burst "
                        f"{r['burst']} {r['side']}: errors {r.get('errors')}, throughput "
                        f"{r.get('throughput_rps')}, problem {r.get('problem')}")
for r in data["rounds"]:
    if r.get("server_exit_on") != 0 or r.get("server_exit_off") != 0:
        problems.append(f"overhead.json: round {r['variant']} {r['round']}: server exits "
                        f"{r.get('server_exit_on')}, {r.get('server_exit_off')}")
    if r.get("scoreboard_requests_off") != 0:
        problems.append(f"overhead.json: round {r['variant']} {r['round']}: the off server "
                        f"counted {r.get('scoreboard_requests_off')} requests")
    if not r.get("scoreboard_requests_on"):
        problems.append(f"overhead.json: round {r['variant']} {r['round']}: the on server "
                        f"counted {r.get('scoreboard_requests_on')} requests")
if data["problems"]:
    problems.append(f"overhead.json: problems reported: {data['problems']}")
if data["verdict"] not in ("PASS", "FAIL") or not isinstance(data["overhead_pct"], (int, float)):
    problems.append(f"overhead.json: verdict {data['verdict']}, overhead {data['overhead_pct']}")

with open(os.path.join(out, "overhead.md")) as f:
    md = f.read()
if not re.search(r"^\*\*overhead = 1 - on/off throughput: -?[0-9.]+% \(target < 2%\): "
                 r"(PASS|FAIL)\*\*$", md, re.M):
    problems.append("overhead.md: no target line")
for heading in ("## Machine and conditions", "## Results", "## Instructions per request",
                "## Problems seen"):
    if heading not in md:
        problems.append(f"overhead.md: no '{heading}' section")
if sanitized:
    if "*Skipped: --no-callgrind was given" not in md:
        problems.append("overhead.md: --no-callgrind, but no note that callgrind was skipped")
    print("overhead_smoke: sanitizer build: instruction count not taken")
elif shutil.which("valgrind"):
    cg = data.get("callgrind") or {}
    by = cg.get("by_config") or {}
    if not by or not all(v and v["ir_per_request_on"] > v["ir_per_request_off"] > 0
                         for v in by.values()):
        problems.append(f"overhead.json: valgrind is installed but callgrind gave {by}")
else:
    if "*Skipped: valgrind is not installed" not in md:
        problems.append("overhead.md: valgrind missing, but no note that callgrind was skipped")
    print("overhead_smoke: valgrind is not installed: instruction count not checked")

for p in problems:
    print("FAIL: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

expect_no_segments overhead
echo "overhead_smoke: ok"
