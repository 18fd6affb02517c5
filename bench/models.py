#!/usr/bin/env python3
"""Server designs compared the way Stevens does in UNP ch. 30 (Figure 30.1):
every model/accept pair of bench_server against the same handler and the
same workload, interleaved, several repetitions; then a concurrency sweep,
the per-worker share of connections, and "serial vs concurrent vs parallel"
with an I/O-bound and a CPU-bound handler.

Writes models.md (tables, targets), models.json (every run) and three PNG
plots (gnuplot): models-throughput.png, models-p99.png, models-share.png.

Builds nothing: build first (cmake -S . -B build && cmake --build build -j2).
Full run: writes bench/results/ (about 3 minutes on 2 vCPUs). --quick: a
smoke run (about 10 s) into --out DIR or a new temporary directory; it never
writes bench/results/.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (add_run_arguments, bins_and_out, command_text, cpu_times,  # noqa: E402
                      cpu_word, cpus_text, machine, machine_text, model_facts, run_client, say,
                      Server, stop_all, stop_all_at_exit, virtual_text)
import lesson  # noqa: E402

PREFIX = f"prefork_models_{os.getpid()}_"  # our scoreboard names, and only ours
REPLY_SIZE = 4000  # Stevens' client asks for 4000 bytes per connection


class Config:
    def __init__(self, model, accept=None, workers=1, threads=None):
        self.model, self.accept, self.workers, self.threads = model, accept, workers, threads
        self.key = model + (":" + accept if accept else "")

    def args(self):
        a = ["--model", self.model, "--workers", str(self.workers)]
        if self.accept:
            a += ["--accept", self.accept]
        if self.threads:
            a += ["--threads", str(self.threads)]
        return a

    def shape(self):
        threads = self.threads or (DEFAULT_THREADS if self.model in THREADED else None)
        processes = self.workers if self.model not in SINGLE else 1
        if threads:
            return f"{processes} × {threads} threads"
        return "1 process" if processes == 1 and self.model in SINGLE else f"{processes} processes"


POOL = 2  # processes in the pools
CONFIGS = [
    Config("iterative"),
    Config("fork-per-connection"),
    Config("thread-per-connection"),
    Config("prefork", "shared", POOL),
    Config("prefork", "lock", POOL),
    Config("prefork", "flock", POOL),
    Config("prefork", "reuseport", POOL),
    Config("prefork", "exclusive", POOL),
    Config("prefork", "pass", POOL),
    Config("prethreaded", "lock", 1, 8),
    Config("prethreaded", "main", 1, 8),
    Config("hybrid", "lock", POOL),  # the default threads per process
    Config("hybrid", "reuseport", POOL),
    Config("event", "exclusive", POOL),
    Config("event", "reuseport", POOL),
]
BY_KEY = {c.key: c for c in CONFIGS}
# From the code's own table of model facts (use_model_facts, before anything runs): the
# models that run one process whatever --workers says, those with --threads, its default.
SINGLE, THREADED, DEFAULT_THREADS = set(), set(), None
POOLED = []  # the designs whose processes or threads exist before the connections do


def use_model_facts(facts):
    """Takes SINGLE, THREADED and DEFAULT_THREADS from bench_server --list-models, and checks
    every configuration measured here against it (a model or strategy renamed or dropped in
    the code fails here, not in the middle of a run)."""
    global DEFAULT_THREADS
    SINGLE.update(name for name, m in facts.items() if not m["pool"])
    THREADED.update(name for name, m in facts.items() if m["threads"])
    DEFAULT_THREADS = next(iter(facts.values()))["default_threads"]
    POOLED.extend(c.key for c in CONFIGS
                  if c.model in facts and (facts[c.model]["pool"] or facts[c.model]["threads"]))
    for c in CONFIGS:
        if c.model not in facts:
            raise SystemExit(f"bench/models: the code has no model {c.model}")
        if c.accept and c.accept not in facts[c.model]["accepts"]:
            raise SystemExit(f"bench/models: --accept {c.accept} does not go with {c.model}")
DESCRIPTION = {
    "iterative": "one process, one connection at a time (Stevens' baseline)",
    "fork-per-connection": "a new process per connection",
    "thread-per-connection": "a new thread per connection",
    "prefork:shared": "processes all blocked in accept(), no lock",
    "prefork:lock": "accept() under a process-shared mutex",
    "prefork:flock": "accept() under flock(2)",
    "prefork:reuseport": "one SO_REUSEPORT socket per process",
    "prefork:exclusive": "epoll_wait with EPOLLEXCLUSIVE, then accept()",
    "prefork:pass": "the master accepts, passes the descriptor (SCM_RIGHTS)",
    "prethreaded:lock": "threads take turns at accept() under a thread mutex",
    "prethreaded:main": "the main thread accepts and queues",
    "hybrid:lock": "processes take turns under a mutex; an accept thread queues to workers",
    "hybrid:reuseport": "a SO_REUSEPORT socket per process; an accept thread queues",
    "event:exclusive": "epoll loop per process, EPOLLEXCLUSIVE on the one socket",
    "event:reuseport": "epoll loop per process, a SO_REUSEPORT socket each",
}
SWEEP = ["event:exclusive", "iterative", "fork-per-connection", "thread-per-connection",
         "prefork:shared", "prefork:lock", "prefork:reuseport", "prethreaded:lock", "hybrid:lock"]
SHARE = ["prefork:shared", "prefork:lock", "prefork:reuseport", "prefork:exclusive",
         "event:exclusive", "event:reuseport"]
LESSON = ["iterative", "prethreaded:lock", "prefork:lock"]
HANDOFF = {"prefork:pass", "prethreaded:main", "hybrid:lock", "hybrid:reuseport"}
COLORS = ["#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
          "#17becf", "#7f7f7f", "#bcbd22"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
# --- running servers and the client -------------------------------------------------------


def client(bins, port, connections, requests, cap_s, pin=None):
    cmd = ([] if pin is None else ["taskset", "-c", str(pin)]) + [
        os.path.join(bins, "prefork-bench"), "--target", "framed",
        "--address", f"127.0.0.1:{port}", "--connections", str(connections),
        "--requests", str(requests), "--new-connection", "--reply-size", str(REPLY_SIZE),
        "--duration", str(cap_s), "--json", "--quiet"]
    return (cmd, *run_client(cmd, cap_s))


def server_of(ctx, config, extra=(), pin=None):
    """The bench_server of `config` (not started yet)."""
    return Server(ctx.bins, ctx.logdir, PREFIX, config.key, "--framed", [*config.args(), *extra],
                  1 if config.model in SINGLE else config.workers, pin=pin)


def one_run(ctx, phase, config, connections, requests, rep, extra=(), pin=False):
    """Starts a server, loads it, reads its scoreboard, stops it: one record."""
    server = server_of(ctx, config, extra, pin=1 if pin else None)
    rec = {"phase": phase, "config": config.key, "rep": rep, "connections": connections,
           "requests_asked": requests, "pinned": pin, "server_extra": list(extra)}
    problem = None
    try:
        server.start()
        rec["server_cmd"] = command_text(server.cmd)
        before, wall = cpu_times(), time.monotonic()
        cmd, data, problem = client(ctx.bins, server.port, connections, requests, ctx.cap_s,
                                    pin=0 if pin else None)
        after, wall = cpu_times(), time.monotonic() - wall
        rec["wall_s"] = wall  # the client's whole life, for the machine's busy time meanwhile
        rec["busy_cpu_s"] = ((after[0] - after[1]) - (before[0] - before[1])) / CLK_TCK
        rec["client_cmd"] = command_text(cmd)
        time.sleep(0.05)  # the last reply is out before its counters are stored
        board = server.scoreboard()
        if board:
            sched = [schedstat(w["pid"]) for w in board["workers"]]
            if all(sched):
                rec["slot_cpu_ms"] = [round(c / 1e6, 2) for c, _ in sched]
                rec["slot_runq_wait_ms"] = [round(w / 1e6, 2) for _, w in sched]
    except RuntimeError as e:
        problem, data, board = str(e), None, None
    finally:
        status = server.stop()
    rec["server_exit"] = status
    rec["server_cpu_s"] = server.cpu()
    if data:
        rec.update(throughput_rps=data["throughput_rps"], requests=data["requests"],
                   errors=data["errors"]["total"], error_kinds={
                       k: v for k, v in data["errors"].items() if k != "total" and v},
                   error_details=data.get("error_details", {}),
                   p50_us=data["latency_us"]["p50"], p99_us=data["latency_us"]["p99"],
                   duration_s=data["duration_s"],
                   client_cpu_pct=data["client_cpu"]["percent_of_one_core"],
                   client_cpu_s=data["client_cpu"]["user_s"] + data["client_cpu"]["sys_s"],
                   in_flight_at_end=data["unfinished"]["in_flight_at_end"])
    if board:
        rec["slots"] = [w["connections_total"] for w in board["workers"]]
        rec["server_connections"] = board["totals"]["connections_total"]
        rec["server_requests"] = board["totals"]["requests"]
        rec["server_errors"] = board["totals"]["errors"]
        rec["worker_restarts"] = board["totals"]["worker_restarts"]
    # Anything odd is a problem, reported, never dropped.
    odd = []
    if problem:
        odd.append(problem)
    if status != 0:
        odd.append(f"server exit status {status}")
    if server.leak():
        odd.append(server.leak())
    if data:
        if data["errors"]["total"]:
            odd.append(f"{data['errors']['total']} client errors {rec['error_kinds']} "
                       f"{rec['error_details']}")
        if data["requests"] + data["errors"]["total"] != requests:
            odd.append(f"{data['requests']} answered + {data['errors']['total']} errors of "
                       f"{requests} asked")
    if board and data and board["totals"]["requests"] != data["requests"]:
        odd.append(f"server counted {board['totals']['requests']} requests, client "
                   f"{data['requests']}")
    if board and board["totals"]["worker_restarts"]:
        odd.append(f"{board['totals']['worker_restarts']} worker restarts")
    if odd:
        rec["problems"] = odd
        ctx.problems.append(f"{phase} {config.key} C={connections} rep {rep}"
                            + (" pinned" if pin else "") + (f" {' '.join(extra)}" if extra else "")
                            + ": " + "; ".join(odd) + server.log_tail())
        say("PROBLEM: " + ctx.problems[-1])
    return rec


def schedstat(pid):
    """(CPU ns, ns runnable but waiting for a CPU) of every live thread of `pid`, from
    /proc/PID/task/*/schedstat (the scheduler's own clock, not 10 ms ticks)."""
    cpu = wait = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                fields = f.read().split()
            cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    return cpu, wait


def idle_run(ctx, config, rep):
    """The same server started, made ready and stopped with no load: its fixed CPU cost."""
    server = server_of(ctx, config)
    try:
        server.start()
        time.sleep(0.05)
    except RuntimeError as e:
        ctx.problems.append(f"idle {config.key} rep {rep}: {e}")
    finally:
        status = server.stop()
    if server.leak():
        ctx.problems.append(f"idle {config.key} rep {rep}: {server.leak()}")
        say("PROBLEM: " + ctx.problems[-1])
    return {"phase": "idle", "config": config.key, "rep": rep, "server_cpu_s": server.cpu(),
            "server_exit": status}


# --- statistics ---------------------------------------------------------------------------


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def spread(slots):
    if not slots or len(slots) < 2:
        return None
    return float("inf") if min(slots) == 0 else max(slots) / min(slots)


def shares(runs):
    """Median share of connections per worker, busiest first (the busiest slot varies
    between runs: LIFO favours whoever waited last)."""
    ranked = [sorted(r["slots"], reverse=True) for r in runs if r.get("slots") and sum(r["slots"])]
    if not ranked:
        return None
    n = max(len(r) for r in ranked)
    med = [statistics.median(r[i] / sum(r) for r in ranked if len(r) > i) for i in range(n)]
    total = sum(med)
    return [100.0 * m / total for m in med]


def net_of(measured, baselines):
    """`measured` minus the median of `baselines` (measurements of the fixed cost that
    `measured` includes), or None when the difference is not above the baselines' own
    noise (their max - min, 0 for a single one): a net figure that comes out negative, or
    within that noise, is "below noise", not a number. No baseline: `measured` itself."""
    base = statistics.median(baselines) if baselines else 0.0
    noise = max(baselines) - min(baselines) if baselines else 0.0
    net = measured - base
    return net if net > noise else None


def net_summary(values, below):
    """summary() of net figures of which `below` more runs were below noise. Those rank
    lowest, so min is None when any was, and the median is None (flagged below_noise)
    when it falls on one. None when there is nothing at all."""
    n = len(values) + below
    if not n:
        return None
    ranked = [None] * below + sorted(values)
    middle = ranked[(n - 1) // 2:n // 2 + 1]
    median = None if None in middle else statistics.mean(middle)
    return {"median": median, "min": ranked[0], "max": ranked[-1], "n": n,
            "below_noise": median is None, "runs_below_noise": below}


def net_field(runs, field):
    """net_summary() of a per-run net figure: None in `field` with the flag
    `field`_below_noise counts as below noise; None without it as not measured."""
    return net_summary([r[field] for r in runs if r.get(field) is not None],
                       sum(1 for r in runs if r.get(field + "_below_noise")))


def summarize_main(runs, idles):
    out = {}
    for key in BY_KEY:
        rs = [r for r in runs if r["config"] == key]
        fixed = [r["server_cpu_s"] for r in idles
                 if r["config"] == key and r.get("server_cpu_s") is not None]
        idle_cpu = summary(fixed)
        for r in rs:
            conns = r.get("server_connections") or r.get("requests")
            if r.get("server_cpu_s") is not None and conns:
                r["cpu_us_per_conn_gross"] = 1e6 * r["server_cpu_s"] / conns
                net = net_of(r["server_cpu_s"], fixed)
                r["cpu_us_per_conn"] = None if net is None else 1e6 * net / conns
                r["cpu_us_per_conn_below_noise"] = net is None
            r["spread"] = spread(r.get("slots"))
        out[key] = {
            "cpu_us_per_conn": net_field(rs, "cpu_us_per_conn"),
            "cpu_us_per_conn_gross": summary([r.get("cpu_us_per_conn_gross") for r in rs]),
            "idle_cpu_ms": None if not idle_cpu else
            {k: (v * 1e3 if k != "n" else v) for k, v in idle_cpu.items()},
            "throughput_rps": summary([r.get("throughput_rps") for r in rs]),
            "p50_us": summary([r.get("p50_us") for r in rs]),
            "p99_us": summary([r.get("p99_us") for r in rs]),
            "client_cpu_pct": summary([r.get("client_cpu_pct") for r in rs]),
            "spread": None if BY_KEY[key].model in SINGLE or BY_KEY[key].workers < 2 else
            summary([r["spread"] for r in rs if r["spread"] is not None]),
            "errors_total": sum(r.get("errors", 0) for r in rs),
            "requests_total": sum(r.get("requests", 0) for r in rs),
            "runs": len(rs),
            "problem_runs": sum(1 for r in rs if r.get("problems")),
        }
    # Stevens' "process control CPU time": minus the iterative server (the reference, so
    # none of its own), paired within each repetition (the configurations of one repetition
    # ran back to back). Its noise is how much the iterative server's own figure varies
    # between repetitions. Below noise where the design's own figure is; not measured in a
    # repetition where the iterative server's is.
    base = {r["rep"]: r["cpu_us_per_conn"] for r in runs
            if r["config"] == "iterative" and r.get("cpu_us_per_conn") is not None}
    noise = max(base.values()) - min(base.values()) if base else 0.0
    for key in BY_KEY:
        rs = [r for r in runs if r["config"] == key and key != "iterative"]
        for r in rs:
            if r["rep"] in base and r.get("cpu_us_per_conn_below_noise"):
                r["control_us_per_conn"], r["control_us_per_conn_below_noise"] = None, True
            elif r["rep"] in base and r.get("cpu_us_per_conn") is not None:
                diff = r["cpu_us_per_conn"] - base[r["rep"]]
                r["control_us_per_conn"] = diff if diff > noise else None
                r["control_us_per_conn_below_noise"] = not diff > noise
        out[key]["control_us_per_conn"] = net_field(rs, "control_us_per_conn")
    return out


def add_other_cpu(runs, idles, nproc):
    """CPU the machine spent during each run on anything but the server and the client:
    other users of the machine, kernel threads, this script. From /proc/stat (ticks of
    1/CLK_TCK s), so a rough figure for short runs."""
    fixed = {}
    for key in BY_KEY:
        s = summary([r["server_cpu_s"] for r in idles if r["config"] == key])
        fixed[key] = s["median"] if s else 0.0
    for r in runs:
        if None in (r.get("busy_cpu_s"), r.get("server_cpu_s"), r.get("client_cpu_s"),
                    r.get("wall_s")) or not r["wall_s"]:
            continue
        other = r["busy_cpu_s"] - (r["server_cpu_s"] - fixed[r["config"]]) - r["client_cpu_s"]
        r["other_cpu_pct"] = round(max(0.0, 100.0 * other / (nproc * r["wall_s"])), 1)


def summarize_by(runs, keys):
    out = {}
    for r in runs:
        k = tuple(r[x] for x in keys)
        out.setdefault(k, []).append(r)
    return out


# --- output -------------------------------------------------------------------------------


def busy_since(before):
    after = cpu_times()
    total = max(after[0] - before[0], 1)
    return {"busy_pct": round(100.0 * (total - (after[1] - before[1])) / total, 1),
            "steal_pct": round(100.0 * (after[2] - before[2]) / total, 1),
            "seconds": round(total / CLK_TCK / (os.cpu_count() or 1), 1)}


def f0(v):
    return "–" if v is None else f"{v:,.0f}"


def f1(v):
    return "–" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}")


def med_range(s, fmt=f1):
    if not s:
        return "–"
    if s["n"] == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def net_value(v):
    return "below noise" if v is None else f1(v)


def net_range(s):
    """med_range() of a net_summary(): "below noise" where a figure is not one."""
    if not s:
        return "–"
    if s["n"] == 1 or s["runs_below_noise"] == s["n"]:
        return net_value(s["median"])
    return f"{net_value(s['median'])} ({net_value(s['min'])}–{net_value(s['max'])})"


def spread_text(s):
    if s is None:
        return "n/a"
    def one(v):
        return "∞" if v == float("inf") else f"{v:.2f}"
    return one(s["median"]) if s["n"] == 1 else f"{one(s['median'])} ({one(s['min'])}–{one(s['max'])})"


def gnuplot_run(script, what):
    result = subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True,
                            capture_output=True, timeout=60)
    if result.returncode != 0:
        say(f"gnuplot failed on {what}: {result.stderr.strip()}")
        return False
    return True


def plot(ctx, out_dir, sweep_sum, share_main, share_low):
    if not shutil.which("gnuplot"):
        say("gnuplot is missing (Debian: apt-get install -y gnuplot-nox): writing the tables "
            "without the plots")
        return False
    ok = True
    conc = ctx.sweep_c
    with tempfile.TemporaryDirectory(prefix="models-plot.") as tmp:
        series = []
        for i, key in enumerate(SWEEP):
            path = os.path.join(tmp, f"s{i}.dat")
            with open(path, "w") as f:
                for c in conc:
                    s = sweep_sum.get((key, c))
                    if s and s["throughput_rps"]:
                        f.write(f"{c} {s['throughput_rps']['median']} {s['throughput_rps']['min']} "
                                f"{s['throughput_rps']['max']} {s['p99_us']['median']} "
                                f"{s['p99_us']['min']} {s['p99_us']['max']}\n")
            series.append((path, key, COLORS[i % len(COLORS)], i))
        common = [
            'set terminal pngcairo size 1100,700 font "DejaVu Sans,11" noenhanced',
            "set logscale x 2",
            f"set xrange [{conc[0] / 1.4}:{conc[-1] * 1.4}]",
            "set xtics (" + ", ".join(f'"{c}" {c}' for c in conc) + ")",
            "set grid xtics ytics mytics lc rgb '#dddddd'",
            'set xlabel "concurrent client connections (a new connection per request)"',
            "set key outside right top box",
        ]
        note = (f"{ctx.sweep_n} requests per point, reply {REPLY_SIZE} B; median of "
                f"{ctx.sweep_reps}, bars min–max; client shares the {ctx.cpus}")
        script = common + [
            f'set output "{os.path.join(out_dir, "models-throughput.png")}"',
            f'set title "Throughput vs concurrency (bench_server models, {ctx.machine})\\n{note}"',
            'set ylabel "requests (= connections) per second"',
            "set yrange [0:*]",
            "plot " + ", ".join(
                f'"{p}" using 1:2:3:4 with yerrorlines lw 2 pt {k + 4} ps 1.2 lc rgb "{c}" '
                f'title "{key}"' for p, key, c, k in series),
        ]
        ok &= gnuplot_run(script, "models-throughput.png")
        script = common + [
            f'set output "{os.path.join(out_dir, "models-p99.png")}"',
            f'set title "p99 latency vs concurrency (connect + request + 4000-byte reply)\\n{note}"',
            'set ylabel "p99 latency (µs, log scale)"',
            "set logscale y 10",
            "set format y '%g'",
            "plot " + ", ".join(
                f'"{p}" using 1:5:6:7 with yerrorlines lw 2 pt {k + 4} ps 1.2 lc rgb "{c}" '
                f'title "{key}"' for p, key, c, k in series),
        ]
        ok &= gnuplot_run(script, "models-p99.png")

        panels = []
        for label, data, c in (("low load", share_low, ctx.share_c), ("Stevens' load", share_main,
                                                                     ctx.main_c)):
            path = os.path.join(tmp, f"share{c}.dat")
            n = max((len(v) for v in data.values() if v), default=2)
            with open(path, "w") as f:
                for key in SHARE:
                    v = data.get(key) or [float("nan")] * n
                    f.write(f'"{key}" ' + " ".join(f"{x:.2f}" for x in v + [0] * (n - len(v)))
                            + "\n")
            panels.append((label, c, path, n))
        script = [
            'set terminal pngcairo size 1300,620 font "DejaVu Sans,11" noenhanced',
            f'set output "{os.path.join(out_dir, "models-share.png")}"',
            "set style data histograms",
            "set style histogram rowstacked",
            "set style fill solid 0.85 border rgb '#333333'",
            "set boxwidth 0.7",
            "set yrange [0:100]",
            "set ytics 10",
            "set grid ytics lc rgb '#dddddd'",
            "set xtics rotate by 30 right",
            'set ylabel "share of the connections (%)"',
            "set key outside bottom center horizontal",
            f'set multiplot layout 1,2 title "Connections per worker ({POOL} workers), busiest '
            f'first; median of the runs"',
        ]
        shade = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"]
        for label, c, path, n in panels:
            script.append(f'set title "{label}: {c} client connection{"s" if c > 1 else ""} at a '
                          f'time, new connection per request"')
            script.append("set arrow 1 from graph 0, first 50 to graph 1, first 50 nohead "
                          "dt 2 lw 2 lc rgb 'black' front")
            script.append("plot " + ", ".join(
                f'"{path}" using {j + 2}' + (":xtic(1)" if j == 0 else "")
                + f' title "{"busiest worker" if j == 0 else ("other worker" if n == 2 else f"worker #{j + 1}")}"'
                + f' lc rgb "{shade[j % len(shade)]}"' for j in range(n)))
        script.append("unset multiplot")
        ok &= gnuplot_run(script, "models-share.png")
    return ok


def write_markdown(ctx, path, data, main_sum, sweep_sum, share_main, share_low, lesson_sum,
                   targets, plotted):
    m = data["machine"]
    p = data["parameters"]
    lines = []
    add = lines.append
    add("# Server designs: Stevens' Figure 30.1 on prefork")
    add("")
    add(f"Generated by `{data['command']}` on {m['date']} in {data['elapsed_s']:.0f} s; every run "
        "in `models.json`."
        + (" **Quick smoke run: one repetition, few requests: not for conclusions.**"
           if ctx.quick else ""))
    add("")
    add("## Machine")
    add("")
    add(f"- {ctx.cpus} (nproc), {m['cpu']}, {m['memory_gib']} GiB RAM, Linux "
        f"{m['kernel']}, {m['os']}; built {m['build_type']}. Load average before the run: "
        f"{' '.join(str(x) for x in m['load_average_before'])}.")
    add(f"- **{ctx.cpus}**{virtual_text(m)}, and **the load generator (`prefork-bench`) runs on the same {ctx.cpus} as the "
        "server** (unpinned unless a table says otherwise): a client on loopback "
        "also pays the TCP handshake and half of each transfer. Absolute numbers drift between "
        "runs and machines; compare within this run. Configurations are interleaved: each "
        "repetition runs all of them in a new shuffled order, so drift falls on all alike; "
        "tables give the median and (min–max) over the repetitions.")
    for phase, c in data["conditions"].items():
        o = data["other_cpu_pct"].get(phase)
        add(f"- {phase} phase ({c['seconds']:.0f} s): the {ctx.unit}s were {c['busy_pct']:.0f}% busy (this benchmark "
            f"included), {c['steal_pct']:.1f}% stolen by the hypervisor"
            + (f"; CPU used during a run by anything but the server and the client (other "
               f"users of the machine, kernel threads, this script): median {o['median']:.0f}%, "
               f"max {o['max']:.0f}% of the {ctx.cpus}." if o else "."))
    add("")
    add("## Workload and commands")
    add("")
    add(f"Stevens' client (UNP Figure 30.1): every request on a **new connection**; the request "
        f"asks for {REPLY_SIZE} bytes (\"N bytes please\": the payload starts `{REPLY_SIZE}\\n`) "
        f"and the server answers with {REPLY_SIZE} bytes. Per configuration and repetition: a "
        f"fresh server, {p['main_n']} connections, {p['main_c']} at a time, "
        f"{p['reps']} repetition{'s' if p['reps'] > 1 else ''}.")
    add("")
    add("```sh")
    add(f"bench_server --framed 127.0.0.1:0 --model M [--accept A] --workers W [--threads T] "
        f"--stats {PREFIX}N --graceful-timeout 5")
    add(f"prefork-bench --target framed --address 127.0.0.1:PORT --connections {p['main_c']} "
        f"--requests {p['main_n']} --new-connection --reply-size {REPLY_SIZE} "
        f"--duration {p['cap_s']} --json --quiet")
    add(f"prefork-top --json --once {PREFIX}N   # per-worker connections_total, after the load")
    add("```")
    add("")
    add(f"- Pools: {POOL} processes ("
        + (f"one per {ctx.unit}" if m["nproc"] == POOL else f"on {ctx.cpus}")
        + ") for prefork and event; **prethreaded: 1 "
        f"process × 8 threads** (Stevens' prethreaded server is one process); hybrid: {POOL} "
        f"processes × {DEFAULT_THREADS} threads. iterative, fork- and thread-per-connection are "
        "one process.")
    add("- **Server CPU time** as Stevens' `pr_cpu_time`: bench_server is a direct child of this "
        "script; after the load it gets SIGTERM and `os.wait4()` returns the master's rusage, "
        "which includes every worker and per-connection child it reaped (user + system). The "
        "same server started, made ready and stopped **without load** costs "
        "a fixed amount (start-up, forking the pool, shutdown: "
        + ", ".join(f"{k} {main_sum[k]['idle_cpu_ms']['median']:.1f} ms"
                    for k in ("iterative", "prefork:lock", "hybrid:lock")
                    if main_sum[k]["idle_cpu_ms"])
        + "; each configuration measured once per repetition): its median is subtracted "
          "before dividing by the connections the scoreboard counted. **Process control** is "
          "that minus the iterative server's, paired within each repetition: Stevens' column. "
          "A net figure that comes out negative, or not above the noise of what it subtracts "
          "(the idle runs' max − min; for process control, the iterative row's), is written "
          "**below noise**, never as a number (null in `models.json`, with `below_noise` on a "
          "median and `runs_below_noise` counted).")
    add("- **Spread** is max/min of `connections_total` over the worker slots (n/a for one "
        "process: prethreaded's 8 threads share one slot).")
    add("")
    add(f"## Figure 30.1: {p['main_c']} concurrent clients, a connection per request, "
        f"{REPLY_SIZE}-byte replies")
    add("")
    add("| server design | workers | process control CPU µs/conn | raw CPU µs/conn | "
        "throughput req/s | p50 µs | p99 µs | spread max/min |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for c in CONFIGS:
        s = main_sum[c.key]
        mark = " ⚠" if s["problem_runs"] else ""
        add(f"| **{c.key}**{mark}: {DESCRIPTION[c.key]} | {c.shape()} | "
            f"{'reference' if c.key == 'iterative' else net_range(s['control_us_per_conn'])} | "
            f"{net_range(s['cpu_us_per_conn'])} | "
            f"{med_range(s['throughput_rps'], f0)} | {med_range(s['p50_us'], f0)} | "
            f"{med_range(s['p99_us'], f0)} | {spread_text(s['spread'])} |")
    add("")
    it = main_sum["iterative"]["cpu_us_per_conn"]
    add("Medians (min–max) over the repetitions. Process control is each repetition's raw CPU "
        "per connection minus the iterative server's in the same repetition, so it carries the "
        "noise of both: the iterative row alone ranges over "
        + (f"{net_value(it['min'])}–{net_value(it['max'])} µs between repetitions"
           if it and it["n"] > 1 else "– (one repetition: no spread)")
        + ". \"below noise\" there means \"no measurable cost beyond serving the "
          "connection\": the processes or threads of a pool exist before the connections do.")
    add("")
    # --- sweep
    add("## Concurrency sweep")
    add("")
    add(f"Throughput and p99 against the number of concurrent client connections, "
        f"{p['sweep_n']} requests per point, median of {p['sweep_reps']} (interleaved). **Every "
        f"request on a new connection**, for every model: with keep-alive, the designs that serve "
        f"one connection at a time per process or thread (iterative, prefork, prethreaded, "
        f"hybrid) could serve only as many clients at once as they have workers, and the "
        f"others would wait for whole connections to end, so the points would not be "
        f"comparable.")
    add("")
    add("| design | " + " | ".join(f"C={c} req/s" for c in ctx.sweep_c) + " | "
        + " | ".join(f"C={c} p99 µs" for c in ctx.sweep_c) + " |")
    add("|---|" + "---:|" * (2 * len(ctx.sweep_c)))
    for key in SWEEP:
        cells_t, cells_p = [], []
        for c in ctx.sweep_c:
            s = sweep_sum.get((key, c))
            cells_t.append(f0(s["throughput_rps"]["median"]) if s and s["throughput_rps"] else "–")
            cells_p.append(f0(s["p99_us"]["median"]) if s and s["p99_us"] else "–")
        add(f"| {key} | " + " | ".join(cells_t) + " | " + " | ".join(cells_p) + " |")
    add("")
    if plotted:
        add("![Throughput vs concurrency](models-throughput.png)")
        add("")
        add("![p99 latency vs concurrency, log scale](models-p99.png)")
    else:
        add("*No plots: gnuplot was missing when this was generated "
            "(Debian: `apt-get install -y gnuplot-nox`).*")
    add("")
    # --- share
    add("## Which worker gets the connections")
    add("")
    add(f"Share of the connections per worker ({POOL} workers), busiest first, median of the "
        f"runs: at low load ({ctx.share_c} client connection at a time, {p['share_n']} "
        f"connections, {p['share_reps']} runs) and at the load of Figure 30.1 ({p['main_c']} at a "
        f"time, from its {p['reps']} runs). Busiest first because which slot is busiest changes "
        f"from run to run; per-slot counts of every run are in `models.json`.")
    add("")
    add(f"| design | C={ctx.share_c}: busiest % | other % | max/min | C={p['main_c']}: busiest % "
        f"| other % | max/min |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for key in SHARE:
        lo, hi = share_low.get(key), share_main.get(key)
        lo_sp = summary([spread(r.get("slots")) for r in ctx.share_runs if r["config"] == key])
        add(f"| {key} | " + (f"{lo[0]:.1f} | {lo[1]:.1f}" if lo else "– | –")
            + f" | {spread_text(lo_sp)} | " + (f"{hi[0]:.1f} | {hi[1]:.1f}" if hi else "– | –")
            + f" | {spread_text(main_sum[key]['spread'])} |")
    add("")
    if plotted:
        add("![Connections per worker](models-share.png)")
        add("")
    add("With `EPOLLEXCLUSIVE` on one shared socket (event:exclusive, prefork:exclusive) the "
        "kernel offers each new connection to the epoll instances registered on the socket in "
        "the same order every time and stops at the first whose worker is waiting in "
        "`epoll_wait`. At low load that worker is nearly always idle, so it takes most of the "
        "connections (the \"LIFO\" behaviour of epoll that Cloudflare described for nginx, "
        "which re-adds its listener every 16 connections to rotate the order); under load it "
        "is often busy and the next one gets the connection, so the share evens out. Blocking "
        "`accept()` (shared, lock) queues the sleeping workers FIFO, so at low load they take "
        "turns; under load whoever is free first takes the next connection, so the split "
        "follows the CPU each worker got. `SO_REUSEPORT` hashes each connection's addresses "
        "and ports to one of the sockets, even at any load, but blind to a busy worker.")
    add("")
    # --- lesson
    add("## Serial, concurrent, parallel")
    add("")
    add(f"The same three designs, with a handler that waits {p['lesson_us']} µs (`--io-wait-us "
        f"{p['lesson_us']}`: a sleep, as for a database or a disk; the CPU is free meanwhile) or "
        f"computes {p['lesson_us']} µs (`--cpu-us {p['lesson_us']}`: a busy loop on the "
        f"thread's CPU clock). {p['lesson_n']} requests, {p['lesson_c']} client connections at "
        f"a time, a new connection per request, median (min–max) of {p['lesson_reps']} "
        f"interleaved runs. **Unpinned**: server and client anywhere on the {ctx.cpus}. **1 "
        f"core**: the server pinned to {ctx.unit} 1 (`taskset -c 1 bench_server …`), the client "
        f"to {ctx.unit} 0 (`taskset -c 0 prefork-bench …`). Server CPU is its CPU time over "
        "the measured time, in cores.")
    add("")
    add("| design | handler | unpinned req/s | server CPU (cores) | 1 core req/s | "
        "server CPU (cores) | unpinned p50 µs | 1 core p50 µs |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for kind, flag in (("I/O-bound", "--io-wait-us"), ("CPU-bound", "--cpu-us")):
        for key in LESSON:
            c = BY_KEY[key]
            u, q = lesson_sum.get((key, kind, False)), lesson_sum.get((key, kind, True))

            def cell(s, field, fmt=f0):
                return med_range(s[field], fmt) if s and s[field] else "–"

            add(f"| {key} ({c.shape()}) | {kind} ({flag} {p['lesson_us']}) | "
                f"{cell(u, 'throughput_rps')} | {cell(u, 'cores', lambda v: f'{v:.2f}')} | "
                f"{cell(q, 'throughput_rps')} | {cell(q, 'cores', lambda v: f'{v:.2f}')} | "
                f"{cell(u, 'p50_us')} | {cell(q, 'p50_us')} |")
    add("")
    add(lesson_text(ctx, lesson_sum))
    add("")
    # --- targets
    add("## Targets")
    add("")
    for t in targets:
        add(f"- **{t['name']}: {t['verdict']}.** {t['text']}")
        add("")
    add("## Problems seen")
    add("")
    if ctx.problems:
        add("Runs with errors, lost requests, bad exit statuses or restarts (every run is kept "
            "in the tables and in `models.json`; ⚠ marks a Figure 30.1 row with such a run):")
        add("")
        for prob in ctx.problems:
            add(f"- {prob}")
    else:
        add("None: every run answered every request without a client error, the server's "
            "scoreboard counted the same number of requests, no worker restarted, and every "
            "server exited 0 on SIGTERM.")
    add("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def lesson_text(ctx, ls):
    def t(key, kind, pin):
        s = ls.get((key, kind, pin))
        return s["throughput_rps"]["median"] if s and s["throughput_rps"] else None

    def r(a, b):
        return f"{a / b:.1f}×" if a and b else "–"

    us = ctx.lesson_us
    it_io, pt_io, pf_io = (t(k, "I/O-bound", False) for k in LESSON)
    it_io1, pt_io1, pf_io1 = (t(k, "I/O-bound", True) for k in LESSON)
    it_cpu, pt_cpu, pf_cpu = (t(k, "CPU-bound", False) for k in LESSON)
    it_cpu1, pt_cpu1, pf_cpu1 = (t(k, "CPU-bound", True) for k in LESSON)
    cap = 1e6 / us
    return "\n".join([
        f"- **Serial**: the iterative server does one request at a time, so it cannot pass "
        f"{cap:.0f} req/s with a {us} µs handler, whichever kind: {f0(it_io)} req/s I/O-bound, "
        f"{f0(it_cpu)} CPU-bound.",
        f"- **Concurrent helps when requests wait**: I/O-bound, 8 threads in one process serve "
        f"{r(pt_io, it_io)} the iterative server's rate unpinned and {r(pt_io1, it_io1)} on one "
        f"core; {POOL} processes {r(pf_io, it_io)} and {r(pf_io1, it_io1)}. While one request "
        f"sleeps, another runs: one core is enough (the ceilings are "
        f"{POOL * cap:.0f} and {8 * cap:.0f} req/s for {POOL} and 8 at a time).",
        f"- **Only parallel helps when requests compute**: CPU-bound on one core, 8 threads "
        f"give {r(pt_cpu1, it_cpu1)} and {POOL} processes {r(pf_cpu1, it_cpu1)} the iterative "
        f"rate: one core does {cap:.0f} requests of {us} µs per second however they are "
        f"scheduled. Unpinned, {POOL} processes on {ctx.cpus} give {r(pf_cpu, it_cpu)}, and "
        f"so do the 8 threads ({r(pt_cpu, it_cpu)}): Linux runs the threads of one process on "
        f"several cores too, so threads are parallel as well as concurrent; what they cannot do "
        f"is make one core compute faster."
        + (f" The client's own CPU on the same {ctx.cpus} keeps the unpinned CPU-bound rate "
           f"below {POOL * cap:.0f} req/s." if ctx.nproc <= POOL else ""),
    ])


SIBLING = {"prefork:pass": "prefork:lock", "prethreaded:main": "prethreaded:lock",
           "hybrid:lock": "prefork:lock", "hybrid:reuseport": "prefork:reuseport"}


def handoff_text(keys, raw, unit):
    how = []
    if "prefork:pass" in keys:
        how.append("prefork:pass: the master accepts and sends the descriptor over a UNIX socket")
    threads = [k for k in keys if k != "prefork:pass"]
    if threads:
        how.append(", ".join(threads) + ": an accepting thread queues it for a pool thread "
                   "under a mutex and condition variable")
    return (", ".join(keys) + " hand every connection from the process or thread that "
            "accepts it to another one that serves it (" + "; ".join(how) + "). That is "
            f"one more wake-up and hand-over per connection, often across {unit}s (about "
            "25–30 µs of latency each on the 2-vCPU VMs of /work/shared/notes/measuring.md). "
            "Measured against the sibling design that serves where it accepts: "
            + ", ".join(f"{k} {f1(raw(k))} µs vs {SIBLING[k]} {f1(raw(SIBLING[k]))} µs "
                        f"(+{f1(raw(k) - raw(SIBLING[k]))})"
                        for k in keys if raw(k) and raw(SIBLING[k])) + ".")


def targets_of(ctx, main_sum, share_low, main_runs, share_runs):
    def raw(key):
        s = main_sum[key]["cpu_us_per_conn"]
        return s["median"] if s else None

    def below(key):  # no measurable CPU per connection beyond the idle server's
        s = main_sum[key]["cpu_us_per_conn"]
        return bool(s and s["below_noise"])

    def cpu_text(key):
        return "below noise" if below(key) else f"{f1(raw(key))} µs"

    def verdict(failed, undecided):
        if failed:
            return (f"NOT MET for {len(failed)} of {len(POOLED)} pooled designs"
                    + (f", undecided for {len(undecided)}" if undecided else ""))
        if undecided:
            return f"UNDECIDED for {len(undecided)} of {len(POOLED)} pooled designs"
        return "PASS"

    def undecided_text(keys):
        return (f"Undecided for {', '.join(keys)}: a figure the ratio needs is below noise or "
                "was not measured. " if keys else "")

    targets = []
    fork, it = raw("fork-per-connection"), raw("iterative")
    # (a) A pooled design below noise costs nothing measurable per connection: met.
    ratios = {k: fork / raw(k) if fork and raw(k) else None for k in POOLED}
    undecided = [k for k in POOLED if not fork or (ratios[k] is None and not below(k))]
    short = [k for k in POOLED if ratios[k] is not None and ratios[k] < 4]
    text = (f"Raw server CPU per connection (medians): fork-per-connection "
            f"{cpu_text('fork-per-connection')}; fork-per-connection ÷ each pooled design: "
            + ", ".join(f"{k} {cpu_text(k)} → {ratios[k]:.1f}×" if ratios[k] else
                        f"{k} {cpu_text(k)}" for k in POOLED) + ". " + undecided_text(undecided))
    if not short:
        text += (f"The fork costs about {f1(fork - it if fork and it else None)} µs per "
                 "connection more than the iterative server (process-control column): the "
                 "copy of the page tables, the new process's first page faults, its exit and "
                 "reaping; a pool pays it once per worker, not per connection.")
    else:
        ho = [k for k in short if k in HANDOFF]
        other = [k for k in short if k not in HANDOFF]
        text += f"Below 4×: {', '.join(short)}. "
        if ho:
            text += ("Of these, " + handoff_text(ho, raw, ctx.unit) + " ")
        if other:
            text += (", ".join(other) + " do not hand connections off; their ratio is within "
                     "what the repetitions' spread allows (see the min–max in the table). ")
        text += (f"The fork itself costs {f1(fork - it if fork and it else None)} µs per "
                 "connection more than the iterative server here (process control).")
    targets.append({"name": "(a) fork-per-connection costs ≥ 4× the CPU per connection of the "
                            "pooled designs", "verdict": verdict(short, undecided),
                    "text": text, "ratios": ratios, "undecided": undecided})
    # (b) A pooled design below noise costs no more than anything: met.
    ratios = {k: raw(k) / it if it and raw(k) else None for k in POOLED}
    undecided = [k for k in POOLED if ratios[k] is None and not below(k)]
    over = [k for k in POOLED if ratios[k] is not None and ratios[k] > 1.5]
    text = (f"Raw CPU per connection ÷ the iterative server's ({cpu_text('iterative')}): "
            + ", ".join(f"{k} {ratios[k]:.2f}×" if ratios[k] is not None else
                        f"{k} {'below noise' if below(k) else '–'}" for k in POOLED) + ". "
            + undecided_text(undecided))
    if over:
        ho = [k for k in over if k in HANDOFF]
        other = [k for k in over if k not in HANDOFF]
        text += f"Above 1.5×: {', '.join(over)}. "
        if ho:
            text += (", ".join(ho) + " pay a hand-off per connection, as in (a): "
                     + ", ".join(f"{k} +{f1(raw(k) - raw(SIBLING[k]))} µs over {SIBLING[k]}"
                                 for k in ho if raw(k) and raw(SIBLING[k])) + ".")
        if other:
            text += (", ".join(other) + ": no hand-off; compare its min–max with the iterative "
                     "row's before reading much into it. ")
    elif not undecided:
        text += ("A pool costs no more CPU per connection than serving one connection at a time: "
                 "the processes or threads exist before the connections do.")
    targets.append({"name": "(b) pooled designs within 1.5× of the iterative baseline",
                    "verdict": verdict(over, undecided), "text": text, "ratios": ratios,
                    "undecided": undecided})
    # (c)
    keys = ["prefork:shared", "prefork:lock", "prefork:reuseport"]
    bad = [k for k in keys if not main_sum[k]["spread"] or main_sum[k]["spread"]["median"] > 1.2]
    worst = [k for k in keys if main_sum[k]["spread"] and main_sum[k]["spread"]["max"] > 1.2]
    text = ("Median (min–max) max/min of connections per worker over the runs of Figure 30.1: "
            + ", ".join(f"{k} {spread_text(main_sum[k]['spread'])}" for k in keys) + ". ")
    if worst:
        def runs_text(key, runs):
            return ", ".join(
                ("∞" if r["spread"] == float("inf") else f"{r['spread']:.2f}")
                + (f" ({r['other_cpu_pct']:.0f}%)" if r.get("other_cpu_pct") is not None else "")
                for r in runs if r["config"] == key and r.get("spread") is not None)

        text += (f"Every run of the designs with a run above 1.2, with the share of the {ctx.cpus} "
                 "that something other than the server and the client used meanwhile in "
                 "parentheses: "
                 + "; ".join(f"{k}: {runs_text(k, main_runs)}" for k in worst) + ". ")
        low = {k: summary([spread(r.get("slots")) for r in share_runs if r["config"] == k])
               for k in worst}
        text += ("At low load (one connection at a time) the same designs give "
                 + ", ".join(f"{k} {spread_text(low[k])}" for k in worst) + ". "
                 "Blocking accept takes turns only while the workers are asleep in it (the "
                 "kernel's accept queue of sleepers is FIFO, and with the lock the sleepers "
                 "take turns at the mutex). Under the load of Figure 30.1 the backlog is rarely "
                 "empty: a worker coming back from a connection takes the next one without "
                 "sleeping, so the split follows how much CPU each worker got while the "
                 f"backlog was full; on {ctx.cpus} shared with the client, and at times with "
                 "other work on the machine (the percentages), that can be uneven. SO_REUSEPORT "
                 "hashes each connection to a socket whatever the workers are doing, so it stays "
                 "even. ")
        if not bad:
            text = "The median meets it. " + text
    ex_lo = share_low.get("event:exclusive")
    ex = main_sum["event:exclusive"]["spread"]
    text += (f"The LIFO skew of a shared epoll socket, shown rather than hidden: event:exclusive "
             f"gives its busiest worker {ex_lo[0]:.0f}% of the connections at low load "
             if ex_lo else "event:exclusive at low load: not measured; ")
    text += (f"and has a spread of {spread_text(ex)} at the load of Figure 30.1 (see "
             "\"Which worker gets the connections\").")
    targets.append({"name": "(c) connection spread max/min ≤ 1.2 with blocking accept "
                            "(prefork:shared, prefork:lock) and with reuseport",
                    "verdict": "PASS" if not bad else f"NOT MET for {', '.join(bad)}",
                    "text": text})
    return targets


# --- main ---------------------------------------------------------------------------------


class Ctx:
    pass


def main():
    parser = argparse.ArgumentParser(
        prog="bench/models",
        description="Compares every server model/accept pair of bench_server the way Stevens' "
                    "Figure 30.1 does, with a concurrency sweep, the per-worker share and the "
                    "serial/concurrent/parallel lesson; writes models.md, models.json and PNG "
                    "plots.")
    add_run_arguments(parser, "a smoke run: one repetition, few requests (about 10 s); never "
                      "writes bench/results/")
    parser.add_argument("--lesson", action="store_true",
                        help="only the serial/concurrent/parallel table of the teaching guide, "
                             "on stdout (under a minute; with --quick a few seconds); writes "
                             "files only with --out")
    parser.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lesson:
        return lesson.run(parser, args)

    bins, out = bins_and_out(parser, args, "models")
    use_model_facts(model_facts(bins))
    if not shutil.which("taskset"):
        parser.error("taskset (util-linux) is missing: the lesson pins the server to one core")

    ctx = Ctx()
    ctx.bins, ctx.quick, ctx.problems = bins, args.quick, []
    ctx.logdir = tempfile.mkdtemp(prefix="models-logs.")
    q = args.quick
    ctx.reps = 1 if q else 9
    ctx.main_c, ctx.main_n = 8, (300 if q else 5000)
    ctx.sweep_c = [1, 16] if q else [1, 4, 16, 64]
    ctx.sweep_n, ctx.sweep_reps = (200 if q else 3000), (1 if q else 5)
    ctx.share_c, ctx.share_n, ctx.share_reps = 1, (200 if q else 2000), (1 if q else 5)
    ctx.lesson_us, ctx.lesson_c = 2000, 8
    ctx.lesson_n, ctx.lesson_reps = (40 if q else 600), (1 if q else 3)
    ctx.cap_s = 60 if q else 120
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)

    stop_all_at_exit(PREFIX)

    command = "bench/models" + (" --quick" if q else "") + (
        f" --out {args.out}" if args.out else "")
    mach = machine(args.build)
    ctx.cpus, ctx.unit, ctx.machine = cpus_text(mach), cpu_word(mach), machine_text(mach)
    ctx.nproc = mach["nproc"]
    say(f"{ctx.cpus}, load average {mach['load_average_before'][0]}; writing to {out}")
    started = time.monotonic()
    conditions = {}
    try:
        # 1. Figure 30.1: every configuration, interleaved, with its no-load twin.
        before = cpu_times()
        main_runs, idles, orders = [], [], []
        for rep in range(1, ctx.reps + 1):
            order = [c.key for c in CONFIGS]
            rng.shuffle(order)
            orders.append(order)
            say(f"Figure 30.1, repetition {rep}/{ctx.reps}: {ctx.main_n} connections, "
                f"{ctx.main_c} at a time, order {' '.join(order)}")
            for key in order:
                idles.append(idle_run(ctx, BY_KEY[key], rep))
                r = one_run(ctx, "main", BY_KEY[key], ctx.main_c, ctx.main_n, rep)
                main_runs.append(r)
                say(f"  {key:22s} {f0(r.get('throughput_rps')):>7} req/s  "
                    f"cpu {1e6 * (r['server_cpu_s'] or 0) / ctx.main_n:6.1f} µs/conn (gross)  "
                    f"slots {r.get('slots')}")
        conditions["Figure 30.1"] = busy_since(before)
        main_sum = summarize_main(main_runs, idles)

        # 2. Low-load share.
        before = cpu_times()
        ctx.share_runs = []
        for rep in range(1, ctx.share_reps + 1):
            order = list(SHARE)
            rng.shuffle(order)
            say(f"share at low load, run {rep}/{ctx.share_reps}: {ctx.share_n} connections, "
                f"{ctx.share_c} at a time")
            for key in order:
                r = one_run(ctx, "share", BY_KEY[key], ctx.share_c, ctx.share_n, rep)
                ctx.share_runs.append(r)
                say(f"  {key:22s} slots {r.get('slots')}")
        conditions["share"] = busy_since(before)
        share_low = {k: shares([r for r in ctx.share_runs if r["config"] == k]) for k in SHARE}
        share_main = {k: shares([r for r in main_runs if r["config"] == k]) for k in SHARE}

        # 3. Concurrency sweep.
        before = cpu_times()
        sweep_runs = []
        for rep in range(1, ctx.sweep_reps + 1):
            for c in ctx.sweep_c:
                order = list(SWEEP)
                rng.shuffle(order)
                say(f"sweep, repetition {rep}/{ctx.sweep_reps}, C={c}: {ctx.sweep_n} requests")
                for key in order:
                    r = one_run(ctx, "sweep", BY_KEY[key], c, ctx.sweep_n, rep)
                    sweep_runs.append(r)
                    say(f"  {key:22s} {f0(r.get('throughput_rps')):>7} req/s  "
                        f"p99 {f0(r.get('p99_us'))} µs")
        conditions["sweep"] = busy_since(before)
        sweep_sum = {}
        for (key, c), rs in summarize_by(sweep_runs, ("config", "connections")).items():
            sweep_sum[(key, c)] = {"throughput_rps": summary([r.get("throughput_rps") for r in rs]),
                                   "p50_us": summary([r.get("p50_us") for r in rs]),
                                   "p99_us": summary([r.get("p99_us") for r in rs]),
                                   "errors_total": sum(r.get("errors", 0) for r in rs)}

        # 4. Serial / concurrent / parallel.
        before = cpu_times()
        lesson_runs = []
        combos = [(k, kind, flag, pin) for k in LESSON
                  for kind, flag in (("I/O-bound", "--io-wait-us"), ("CPU-bound", "--cpu-us"))
                  for pin in (False, True)]
        for rep in range(1, ctx.lesson_reps + 1):
            rng.shuffle(combos)
            say(f"serial/concurrent/parallel, repetition {rep}/{ctx.lesson_reps}: "
                f"{ctx.lesson_n} requests, {ctx.lesson_c} at a time")
            for key, kind, flag, pin in combos:
                r = one_run(ctx, "lesson", BY_KEY[key], ctx.lesson_c, ctx.lesson_n, rep,
                            extra=(flag, str(ctx.lesson_us)), pin=pin)
                r["kind"] = kind
                if r.get("server_cpu_s") is not None and r.get("duration_s"):
                    r["cores"] = r["server_cpu_s"] / r["duration_s"]
                lesson_runs.append(r)
                say(f"  {key:18s} {kind:9s} {'1 core ' if pin else 'unpinned'} "
                    f"{f0(r.get('throughput_rps')):>6} req/s  cores {r.get('cores', 0):.2f}")
        conditions["serial/concurrent/parallel"] = busy_since(before)
        lesson_sum = {}
        for (key, kind, pin), rs in summarize_by(lesson_runs, ("config", "kind", "pinned")).items():
            lesson_sum[(key, kind, pin)] = {
                "throughput_rps": summary([r.get("throughput_rps") for r in rs]),
                "p50_us": summary([r.get("p50_us") for r in rs]),
                "p99_us": summary([r.get("p99_us") for r in rs]),
                "cores": summary([r.get("cores") for r in rs])}
    finally:
        stop_all(PREFIX)
        shutil.rmtree(ctx.logdir, ignore_errors=True)

    other = {}
    for phase, runs in (("Figure 30.1", main_runs), ("share", ctx.share_runs),
                        ("sweep", sweep_runs), ("serial/concurrent/parallel", lesson_runs)):
        add_other_cpu(runs, idles, mach["nproc"])
        other[phase] = summary([r.get("other_cpu_pct") for r in runs])
    for key in BY_KEY:
        main_sum[key]["other_cpu_pct"] = summary(
            [r.get("other_cpu_pct") for r in main_runs if r["config"] == key])
    targets = targets_of(ctx, main_sum, share_low, main_runs, ctx.share_runs)
    elapsed = time.monotonic() - started
    data = {
        "command": command,
        "machine": mach,
        "elapsed_s": round(elapsed, 1),
        "seed": seed,
        "parameters": {"reps": ctx.reps, "main_c": ctx.main_c, "main_n": ctx.main_n,
                       "reply_size": REPLY_SIZE, "new_connection": True, "pool": POOL,
                       "sweep_c": ctx.sweep_c, "sweep_n": ctx.sweep_n,
                       "sweep_reps": ctx.sweep_reps, "share_c": ctx.share_c,
                       "share_n": ctx.share_n, "share_reps": ctx.share_reps,
                       "lesson_us": ctx.lesson_us, "lesson_c": ctx.lesson_c,
                       "lesson_n": ctx.lesson_n, "lesson_reps": ctx.lesson_reps,
                       "cap_s": ctx.cap_s, "quick": ctx.quick},
        "configs": [{"key": c.key, "model": c.model, "accept": c.accept, "workers": c.workers,
                     "threads": c.threads, "shape": c.shape(), "description": DESCRIPTION[c.key]}
                    for c in CONFIGS],
        "conditions": conditions,
        "other_cpu_pct": other,
        "main": {"orders": orders, "summary": main_sum, "runs": main_runs, "idle_runs": idles},
        "share": {"low_load": share_low, "main_load": share_main, "runs": ctx.share_runs},
        "sweep": {"summary": [{"config": k, "connections": c, **v}
                              for (k, c), v in sorted(sweep_sum.items())], "runs": sweep_runs},
        "lesson": {"summary": [{"config": k, "kind": kind, "pinned": pin, **v}
                               for (k, kind, pin), v in sorted(lesson_sum.items())],
                   "runs": lesson_runs},
        "targets": targets,
        "problems": ctx.problems,
    }
    plotted = plot(ctx, out, sweep_sum, share_main, share_low)
    for name in ("models-throughput.png", "models-p99.png", "models-share.png"):
        if not plotted and os.path.exists(os.path.join(out, name)) and ctx.quick:
            os.unlink(os.path.join(out, name))
    data["plotted"] = plotted

    def clean(v):  # JSON has no infinity; 3 decimals are plenty; no empty error maps
        if isinstance(v, float):
            return "inf" if v == float("inf") else round(v, 3)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()
                    if not (k in ("error_kinds", "error_details") and not x)}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump(clean(data), f, indent=1)
        f.write("\n")
    write_markdown(ctx, os.path.join(out, "models.md"), data, main_sum, sweep_sum, share_main,
                   share_low, lesson_sum, targets, plotted)
    say(f"done in {elapsed:.0f} s: {os.path.join(out, 'models.md')}")
    for t in targets:
        say(f"{t['name']}: {t['verdict']}")
    if ctx.problems:
        say(f"{len(ctx.problems)} problem(s) seen: see 'Problems seen' in models.md")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
