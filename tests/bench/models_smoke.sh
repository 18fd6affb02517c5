#!/usr/bin/env bash
# Smoke test of bench/models: a --quick run into a temporary directory (never
# bench/results/), then checks that what it wrote is well-formed: models.md
# has a Figure 30.1 row for every model/accept configuration, the sweep, the
# lesson and the targets; models.json parses and every configuration answered
# every request without errors; every figure has its shape (a number, or for a
# net CPU figure null flagged "below noise"), never checked for size or sign: a
# slow or busy machine must not fail it; the PNGs exist when gnuplot is
# installed; and no scoreboard segment of the run is left in /dev/shm. Then
# the same for bench/models --lesson --quick (a few seconds): the shape of
# its table, the same every run.
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


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def figure(what, s, net=False):
    """A summary of a measurement: a number, or for a net figure null flagged below noise."""
    if not isinstance(s, dict) or not number(s.get("n")):
        problems.append(f"{what}: not a summary: {s!r}")
    elif net and s.get("median") is None:
        if s.get("below_noise") is not True:
            problems.append(f"{what}: null median without below_noise: {s!r}")
    elif not number(s.get("median")):
        problems.append(f"{what}: median not a number: {s!r}")


with open(os.path.join(out, "models.json")) as f:
    data = json.load(f)
summary = data["main"]["summary"]
for key in configs:
    s = summary.get(key)
    if not s:
        problems.append(f"models.json: no summary for {key}")
        continue
    figure(f"models.json: {key} throughput", s["throughput_rps"])
    figure(f"models.json: {key} gross CPU per connection", s["cpu_us_per_conn_gross"])
    figure(f"models.json: {key} CPU per connection", s["cpu_us_per_conn"], net=True)
    # process control: not measured when the iterative server's CPU was below noise
    if key != "iterative" and not (s["control_us_per_conn"] is None
                                   and (summary["iterative"]["cpu_us_per_conn"] or {}).get("below_noise")):
        figure(f"models.json: {key} process control", s["control_us_per_conn"], net=True)
    if s["errors_total"] != 0:
        problems.append(f"models.json: {key} had {s['errors_total']} errors")
    if s["requests_total"] != s["runs"] * data["parameters"]["main_n"]:
        problems.append(f"models.json: {key} answered {s['requests_total']} requests of "
                        f"{s['runs']} × {data['parameters']['main_n']}")
runs = data["main"]["runs"] + data["sweep"]["runs"] + data["share"]["runs"] + data["lesson"]["runs"]
for r in runs:
    if r.get("errors", 1) != 0 or r.get("requests") != r["requests_asked"] \
            or not number(r.get("throughput_rps")):
        problems.append(f"models.json: run {r['phase']} {r['config']} C={r['connections']}: "
                        f"errors {r.get('errors')}, {r.get('requests')} of "
                        f"{r['requests_asked']} answered, throughput {r.get('throughput_rps')}")
    if r.get("server_exit") != 0:
        problems.append(f"models.json: run {r['phase']} {r['config']}: server exit "
                        f"{r.get('server_exit')}")
if data["problems"]:
    problems.append(f"models.json: problems reported: {data['problems']}")
if len(data["targets"]) != 3:
    problems.append(f"models.json: {len(data['targets'])} targets")

with open(os.path.join(out, "models.md")) as f:
    md = f.read()
num = r"[0-9][0-9,]*(?:\.[0-9]+)?"
net = rf"(?:below noise|{num})"
net_cell = rf"(?:–|{net}(?: \({net}–{net}\))?)"
for key in configs:
    row = re.search(r"^\| \*\*" + re.escape(key) + r"\*\*.*$", md, re.M)
    if not row:
        problems.append(f"models.md: no Figure 30.1 row for {key}")
        continue
    cells = [c.strip() for c in row.group(0).strip("|").split("|")]
    control, raw = cells[2], cells[3]
    if not re.fullmatch(net_cell, raw) or not (
            re.fullmatch(net_cell, control) or key == "iterative" and control == "reference"):
        problems.append(f"models.md: {key}: CPU cells {control!r}, {raw!r} are neither "
                        "figures nor 'below noise'")
for heading in ("## Machine", "## Figure 30.1", "## Concurrency sweep",
                "## Which worker gets the connections", "## Serial, concurrent, parallel",
                "## Targets"):
    if heading not in md:
        problems.append(f"models.md: no '{heading}' section")
for t in ("(a)", "(b)", "(c)"):
    if not re.search(r"^- \*\*" + re.escape(t) + r".*: (PASS|NOT MET|UNDECIDED)", md, re.M):
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

expect_no_segments models

# --lesson: the teaching guide's table. Its shape only: the same lines and
# columns every run, a number in every cell (or "skipped" for two cores on a
# one-CPU machine), the files of --out, and nothing written in bench/results/.
results_before=$(find "$root/bench/results" -printf '%p %T@\n' | LC_ALL=C sort)
run_quick models --build "$build" --lesson
[[ $(find "$root/bench/results" -printf '%p %T@\n' | LC_ALL=C sort) == "$results_before" ]] || {
  echo "FAIL: bench/models --lesson changed bench/results/" >&2
  exit 1
}
python3 - "$out" <<'PY'
import json, os, re, sys

out = sys.argv[1]
with open(os.path.join(out, "stdout")) as f:
    lines = f.read().split("\n")
with open(os.path.join(out, "models-lesson.txt")) as f:
    saved = f.read().split("\n")
data = json.load(open(os.path.join(out, "models-lesson.json")))
two = len(os.sched_getaffinity(0)) >= 2
num = r"[0-9]+(?:\.[0-9]+)?"
cell = rf"{num} +{num} cores" if two else "skipped"
designs = [r"iterative \(1 process, serial\)", r"prethreaded \(1 process × 8 threads\)",
           r"prefork \(8 processes\)"]
expected = [
    r"Serial, concurrent, parallel: a handler that waits .*; 20 requests per cell, .*\.",
    r"One core: the server on CPU .*",
    r"",
    r"design +handler +one core +two cores",
    r" +req/s +server CPU +req/s +server CPU",
    *(rf"{d} +{kind} +{num} +{num} cores +{cell}"
      for kind in ("I/O-bound", "CPU-bound") for d in designs),
    r"",
    rf"- Serial: .* {num} req/s I/O-bound, {num} CPU-bound, on one core\.",
    rf"- Concurrent: .* serve {num}× and 8 processes {num}× .*\(multiprogramming\)\.",
    rf"- Parallel: .* served {num}, {num} and {num} requests\. "
    + (rf"Only more cores .* give {num}× .* {num}× .* using {num} and {num} cores\."
       if two else r"Two cores: skipped, this machine has 1 v?CPU\."),
    r"",
    r"Machine: .*; measured in [0-9]+ s\.",
    r"",
]
problems = []
if len(lines) != len(expected):
    problems.append(f"{len(lines)} lines, expected {len(expected)}")
for i, (line, pattern) in enumerate(zip(lines, expected)):
    if not re.fullmatch(pattern, line):
        problems.append(f"line {i + 1}: {line!r} does not match {pattern!r}")
if saved != lines:
    problems.append("--out's models-lesson.txt differs from stdout")
if data["problems"] or len(data["cells"]) != (12 if two else 6):
    problems.append(f"models-lesson.json: {len(data['cells'])} cells, problems {data['problems']}")
for p in problems:
    print("FAIL: bench/models --lesson: " + p, file=sys.stderr)
if problems:
    print("its output:\n" + "\n".join(lines), file=sys.stderr)
sys.exit(1 if problems else 0)
PY
expect_no_segments models
echo "models_smoke: ok"
