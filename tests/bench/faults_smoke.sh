#!/usr/bin/env bash
# The fault-injection harness's bounded CI run: bench/faults/run.py --quick
# against upper_server, the scenarios given (those today's engine passes),
# JSON into a scratch directory (never bench/results/). Checks that each of
# them ran and passed (the harness exits 1 otherwise, and its table says
# why), that the JSON holds their counts, that a bad flag is a usage error
# (exit 2), and that no scoreboard segment of the run is left in /dev/shm.
#   usage: faults_smoke.sh UPPER_SERVER SCENARIO,SCENARIO,...
set -euo pipefail

server=${1:?usage: faults_smoke.sh UPPER_SERVER SCENARIOS}
scenarios=${2:?usage: faults_smoke.sh UPPER_SERVER SCENARIOS}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=smoke_common.sh
source "$root/tests/bench/smoke_common.sh"
make_scratch faults
run=$root/bench/faults/run.py

status=0
python3 -B "$run" --server "$server" --no-such-flag >/dev/null 2>&1 || status=$?
if [[ $status -ne 2 ]]; then
  echo "FAIL: bench/faults/run.py --no-such-flag exited $status, expected 2" >&2
  exit 1
fi

list_segments >"$out/shm.before"
status=0
python3 -B "$run" --quick --server "$server" --scenarios "$scenarios" \
  --json "$out/faults.json" --report "$out/faults.md" >"$out/stdout" 2>"$out/stderr" &
bench_pid=$!
wait "$bench_pid" || status=$?
cat "$out/stdout"
if [[ $status -ne 0 ]]; then
  echo "FAIL: bench/faults/run.py --quick exited $status; its stderr:" >&2
  tail -30 "$out/stderr" >&2
  exit 1
fi

python3 - "$out" "$scenarios" <<'PY'
import json, os, sys

out, wanted = sys.argv[1], sys.argv[2].split(",")
problems = []
with open(os.path.join(out, "faults.json")) as f:
    data = json.load(f)
got = {r["name"]: r for r in data["results"]}
if sorted(got) != sorted(wanted):
    problems.append(f"faults.json: scenarios {sorted(got)}, expected {sorted(wanted)}")
for name, r in got.items():
    if r["status"] != "pass":
        problems.append(f"{name}: {r['status']} {r['reason']}")
    if not r["tcp"].get("answered", 0) > 0 or not r["udp"].get("answered", 0) > 0:
        problems.append(f"{name}: nothing answered: tcp {r['tcp']}, udp {r['udp']}")
    if not r["checks"] or not all(ok for _, ok, _ in r["checks"]):
        problems.append(f"{name}: checks {r['checks']}")
for key in ("cpu", "kernel", "nproc", "load_average_before"):
    if key not in data["machine"]:
        problems.append(f"faults.json: no machine {key}")
if data["verdict"] != "PASS":
    problems.append(f"faults.json: verdict {data['verdict']}")
with open(os.path.join(out, "faults.md")) as f:
    md = f.read()
for heading in ["## Machine and conditions", "## Summary"] + [f"## {n}: PASS" for n in wanted]:
    if heading not in md:
        problems.append(f"faults.md: no '{heading}'")
for p in problems:
    print("FAIL: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

# The run's scoreboards are named prefork_faults_<its pid>_<scenario>.
expect_no_segments faults '.*'
echo "faults_smoke: ok ($scenarios)"
