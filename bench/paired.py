"""What the two A/B benchmarks (bench/overhead: the scoreboard on and off;
bench/compare_builds.py: a build before and after a change) share: the summary
of a list of paired ratios, the report's number formats, stopping a round's
servers, and counting the worker's instructions under valgrind's callgrind."""

import os
import re
import shutil
import statistics
import subprocess

from benchlib import loadavg, say

CLK_TCK = os.sysconf("SC_CLK_TCK")

# --- statistics ---------------------------------------------------------------------------


def summary(values):
    """Median, quartiles, min, max and n of the values that are not None (None when there
    are none); from 6 values on, a 95% confidence interval of the median from order
    statistics (no model of the distribution)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    n = len(values)
    if n >= 4:
        q = statistics.quantiles(values, n=4, method="inclusive")
        q1, q3 = q[0], q[2]
    else:
        q1, q3 = values[0], values[-1]
    out = {"median": statistics.median(values), "q1": q1, "q3": q3, "min": values[0],
           "max": values[-1], "n": n}
    if n >= 6:
        half = 1.96 * n ** 0.5 / 2
        lo, hi = max(int((n + 1) / 2 - half), 1), min(int((n + 1) / 2 + half + 0.999), n)
        out["ci95"] = [values[lo - 1], values[hi - 1]]
    return out


# --- report -------------------------------------------------------------------------------


def f0(v):
    return "–" if v is None else f"{v:,.0f}"


def f1(v):
    return "–" if v is None else f"{v:.1f}"


def f2(v):
    return "–" if v is None else f"{v:.2f}"


def f3(v):
    return "–" if v is None else f"{v:.3f}"


# --- rounds -------------------------------------------------------------------------------


def record_machine_use(record, m0, m1, ours_s, wall, nproc):
    """What else ran during a round: the machine's busy CPU (cpu_times() before and after)
    beyond `ours_s`, the clients' and workers' own CPU seconds, as a share of every CPU
    over `wall` seconds; the hypervisor's steal; the load average after."""
    busy = ((m1[0] - m1[1]) - (m0[0] - m0[1])) / CLK_TCK
    record["wall_s"] = wall
    record["other_cpu_pct"] = max(0.0, 100.0 * (busy - ours_s) / (nproc * wall))
    record["steal_pct"] = 100.0 * (m1[2] - m0[2]) / max(m1[0] - m0[0], 1)
    record["load_1m_after"] = loadavg()[0]


def end_round(ctx, record, problems, what):
    """Keeps a round's problems in its record and in the run's list, and says them."""
    if problems:
        record["problems"] = problems
        ctx.problems.append(f"{what}: " + "; ".join(problems))
        say("PROBLEM: " + ctx.problems[-1])


def stop_servers(servers, sides, record, problems):
    """Stops each side's server at the end of a round: its exit status goes into `record`,
    a non-zero status or a scoreboard segment left behind into `problems`."""
    for side in sides:
        status = servers[side].stop()
        record[f"server_exit_{side}"] = status
        if status != 0:
            problems.append(f"{side}: server exit status {status}" + servers[side].log_tail())
        if servers[side].leak():
            problems.append(servers[side].leak())


# --- callgrind ----------------------------------------------------------------------------


def valgrind_version():
    """valgrind's version, or None when it is missing (the instruction count is skipped)."""
    if not shutil.which("valgrind"):
        return None
    try:
        r = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def callgrind_totals(path):
    """The total Ir of a callgrind output file ("summary:" or "totals:"), or None."""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    return None


def callgrind_functions(path, inclusive=False, pattern=None):
    """Ir per function from callgrind_annotate (exclusive, or inclusive of callees), file
    names dropped; only the functions whose names match `pattern` when one is given. None
    when callgrind_annotate is missing or hangs."""
    if not shutil.which("callgrind_annotate"):
        return None
    cmd = ["callgrind_annotate", "--threshold=100", path]
    if inclusive:
        cmd.insert(1, "--inclusive=yes")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)(?:\s+\[[^\]]*\])?\s*$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        name = m.group(2)
        if pattern and not re.search(pattern, name):
            continue
        name = re.sub(r"^(?:\?\?\?|[^\s:]+\.\w+):(?!:)", "", name)  # the file, if any
        out[name] = out.get(name, 0) + int(m.group(1).replace(",", ""))
    return out
