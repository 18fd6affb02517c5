#!/usr/bin/env bash
# Smoke test of bench/models: a --quick run into a temporary directory (never
# bench/results/), then checks that what it wrote is well-formed: models.md
# has a Figure 30.1 row for every model/accept configuration, the sweep, the
# lesson and the targets; models.json parses and every configuration answered
# every request (throughput > 0, no errors); the PNGs exist when gnuplot is
# installed; and no scoreboard segment of the run is left in /dev/shm.
#   usage: models_smoke.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: models_smoke.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=smoke_common.sh
source "$root/tests/bench/smoke_common.sh"
make_scratch models
expect_usage_error models

run_quick models --build "$build"

python3 - "$out" <<'PY'
import json, os, re, shutil, sys

out = sys.argv[1]
configs = ["event:exclusive", "event:reuseport", "iterative", "fork-per-connection",
           "thread-per-connection", "prefork:shared", "prefork:lock", "prefork:flock",
           "prefork:reuseport", "prefork:exclusive", "prefork:pass", "prethreaded:lock",
           "prethreaded:main", "hybrid:lock", "hybrid:reuseport"]
problems = []

with open(os.path.join(out, "models.json")) as f:
    data = json.load(f)
summary = data["main"]["summary"]
for key in configs:
    s = summary.get(key)
    if not s:
        problems.append(f"models.json: no summary for {key}")
        continue
    if not s["throughput_rps"] or not s["throughput_rps"]["median"] > 0:
        problems.append(f"models.json: {key} throughput {s['throughput_rps']}")
    if s["errors_total"] != 0:
        problems.append(f"models.json: {key} had {s['errors_total']} errors")
    if not s["requests_total"] > 0:
        problems.append(f"models.json: {key} answered no request")
    if not s["cpu_us_per_conn"] or not s["cpu_us_per_conn"]["median"] > 0:
        problems.append(f"models.json: {key} CPU per connection {s['cpu_us_per_conn']}")
runs = data["main"]["runs"] + data["sweep"]["runs"] + data["share"]["runs"] + data["lesson"]["runs"]
for r in runs:
    if r.get("errors", 1) != 0 or not r.get("throughput_rps", 0) > 0:
        problems.append(f"models.json: run {r['phase']} {r['config']} C={r['connections']}: "
                        f"errors {r.get('errors')}, throughput {r.get('throughput_rps')}")
    if r.get("server_exit") != 0:
        problems.append(f"models.json: run {r['phase']} {r['config']}: server exit "
                        f"{r.get('server_exit')}")
if data["problems"]:
    problems.append(f"models.json: problems reported: {data['problems']}")
if len(data["targets"]) != 3:
    problems.append(f"models.json: {len(data['targets'])} targets")

with open(os.path.join(out, "models.md")) as f:
    md = f.read()
for key in configs:
    if not re.search(r"^\| \*\*" + re.escape(key) + r"\*\*", md, re.M):
        problems.append(f"models.md: no Figure 30.1 row for {key}")
for heading in ("## Machine", "## Figure 30.1", "## Concurrency sweep",
                "## Which worker gets the connections", "## Serial, concurrent, parallel",
                "## Targets"):
    if heading not in md:
        problems.append(f"models.md: no '{heading}' section")
for t in ("(a)", "(b)", "(c)"):
    if not re.search(r"^- \*\*" + re.escape(t) + r".*: (PASS|NOT MET)", md, re.M):
        problems.append(f"models.md: no verdict for target {t}")

pngs = ["models-throughput.png", "models-p99.png", "models-share.png"]
if shutil.which("gnuplot"):
    for png in pngs:
        path = os.path.join(out, png)
        if not os.path.exists(path) or os.path.getsize(path) < 1000:
            problems.append(f"{png} missing or empty although gnuplot is installed")
        else:
            with open(path, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    problems.append(f"{png} is not a PNG")
else:
    print("models_smoke: gnuplot is not installed: PNGs not checked")

for p in problems:
    print("FAIL: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

expect_no_segments models "$out/models.md"
echo "models_smoke: ok"
