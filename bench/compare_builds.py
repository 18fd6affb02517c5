#!/usr/bin/env python3
"""Two builds of prefork side by side: is the framed TCP and the UDP request path of the
"after" build as fast as that of the "before" build?

    python3 bench/compare_builds.py --before DIR --after DIR --out bench/results

DIR is a source tree with a build/ in it, or a build directory (with bin/bench_server,
bin/prefork-top, bin/prefork-bench), built Release. Each build's bench_server is read by
that build's own prefork-top (the scoreboard layout may differ); the load comes from one
client binary, the after build's prefork-bench, so only the server differs.

- Throughput and latency: bench_server, one worker, 16 keep-alive framed connections
  (closed loop) or 16 UDP sockets (request/reply); 64-byte requests, echoed. A round
  starts a fresh before server and a fresh after server and alternates short bursts
  between them (B A A B B A ...), so each burst has a partner on the other build a second
  away: the vCPUs of a shared VM drift by 10-30% over seconds, more than what we look for.
  Pinned (server on CPU 1, client on CPU 0) and unpinned. The rounds of the four workloads
  are interleaved in time too. Per pair: after/before of throughput, p50, p99 and the
  worker's CPU time per request; reported as medians with IQR, min-max and a 95%
  confidence interval of the median.
- Instructions per request (valgrind's callgrind, user space): the worker of each build
  under callgrind, a small and a large number of requests; (Ir(large) - Ir(small)) over
  the extra requests cancels start-up and shutdown. Deterministic, whatever the machine
  does meanwhile. Skipped with a note when valgrind is missing.

Writes protocol-api.md and protocol-api.json (every burst, the machine) into --out
(default: a new temporary directory). Bounded: a load budget (--budget, default 240 s)
stops starting new rounds, every client run is capped, and the whole run takes under
about 6 minutes. --quick: a smoke run of about 30 s.
"""

import argparse
import json
import mmap
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (cpu_times, cpus_text, finish_client,  # noqa: E402
                      loadavg, machine, run_client, say, Server,
                      start_client, stop_all_at_exit)
from paired import (callgrind_functions, callgrind_totals, end_round, f0, f1,  # noqa: E402
                    f3, record_machine_use, stop_servers, summary, valgrind_version)

PREFIX = f"prefork_cmp_{os.getpid()}_"  # our scoreboard names, and only ours
SIDES = ("before", "after")
PROGRAMS = ("bench_server", "prefork-top")


class Workload:
    def __init__(self, key, title, target, pinned, together=False):
        self.key, self.title, self.target, self.pinned = key, title, target, pinned
        # together: both servers on CPU 1 and both clients on CPU 0, loaded at the same time
        self.together = together

    def listen_flag(self):
        return "--udp" if self.target == "udp" else "--framed"


WORKLOADS = [
    Workload("framed_pinned", "framed keep-alive, pinned", "framed", True),
    Workload("udp_pinned", "UDP request/reply, pinned", "udp", True),
    Workload("framed_unpinned", "framed keep-alive, unpinned", "framed", False),
    Workload("udp_unpinned", "UDP request/reply, unpinned", "udp", False),
]
TOGETHER = [
    Workload("framed_side_by_side", "framed keep-alive, side by side", "framed", True, True),
    Workload("udp_side_by_side", "UDP request/reply, side by side", "udp", True, True),
]


# --- the builds ---------------------------------------------------------------------------


def bins_of(parser, path):
    """bin/ of a build directory, or of DIR/build; a usage error without the programs."""
    path = os.path.abspath(path)
    for cand in (os.path.join(path, "build", "bin"), os.path.join(path, "bin")):
        if all(os.access(os.path.join(cand, p), os.X_OK) for p in PROGRAMS):
            return cand
    parser.error(f"{path}: no bin/bench_server and bin/prefork-top in it or in its build/ "
                 "(build it: cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "
                 "-DBUILD_TESTING=OFF && cmake --build build)")


def build_info(bins):
    """Source directory, commit and build type of the build that `bins` belongs to."""
    build = os.path.dirname(bins)
    src, btype = None, "unknown"
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_HOME_DIRECTORY:"):
                    src = line.split("=", 1)[1].strip()
                elif line.startswith("CMAKE_BUILD_TYPE:"):
                    btype = line.split("=", 1)[1].strip()
    except OSError:
        pass
    commit, subject, dirty = "unknown", "", None
    if src:
        r = subprocess.run(["git", "-C", src, "log", "-1", "--format=%H %s"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode == 0 and r.stdout.strip():
            commit, _, subject = r.stdout.strip().partition(" ")
        r = subprocess.run(["git", "-C", src, "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":!bench/*.py", ":!bench/results"],
                           capture_output=True, text=True, timeout=10)
        dirty = bool(r.stdout.strip()) if r.returncode == 0 else None
    return {"bins": bins, "source": src, "commit": commit, "subject": subject,
            "build_type": btype, "modified_sources": dirty}


# --- the machine --------------------------------------------------------------------------


def page_fault_us(mib=64):
    """µs per first touch of a fresh anonymous 4 KiB page: the time of touching every page
    of a new mapping once, less the time of touching them again (the loop's own cost)."""
    size = mib << 20
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        pages = range(0, size, 4096)
        t0 = time.perf_counter()
        for off in pages:
            m[off] = 1
        t1 = time.perf_counter()
        for off in pages:
            m[off] = 2
        t2 = time.perf_counter()
    finally:
        m.close()
    n = size // 4096
    return round(max(0.0, (t1 - t0) - (t2 - t1)) / n * 1e6, 3)


# --- servers and bursts -------------------------------------------------------------------


def new_server(ctx, side, workload, pin=None, wrapper=()):
    return Server(ctx.bins[side], ctx.logdir, PREFIX, side, workload.listen_flag(),
                  ["--workers", "1"], 1, pin=pin, wrapper=wrapper)


def client_cmd(ctx, target, port, pin, duration=None, warmup=None, requests=None):
    cmd = ([] if pin is None else ["taskset", "-c", str(pin)]) + [
        ctx.client, "--target", target, "--address", f"127.0.0.1:{port}",
        "--connections", str(ctx.connections), "--threads", "1", "--size", "64"]
    if requests is not None:
        cmd += ["--requests", str(requests), "--duration", str(duration or 300)]
    else:
        cmd += ["--duration", str(duration), "--warmup", str(warmup)]
    return cmd + ["--json", "--quiet"]


def shown(ctx, cmd):
    """A command as the report shows it: the builds' bin/ as $BEFORE/ and $AFTER/."""
    out = []
    for c in cmd:
        for side in SIDES:
            if c.startswith(ctx.bins[side] + "/"):
                c = f"${side.upper()}/" + c[len(ctx.bins[side]) + 1:]
        out.append(c)
    return " ".join(out)


def proc_cpu_ns(pid):
    """ns on a CPU so far, from /proc/PID/schedstat; None when it is gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def burst(ctx, workload, server, duration, warmup):
    """One prefork-bench run against `server`: a record of its JSON and the worker's CPU."""
    pin = 0 if workload.pinned else None
    cmd = client_cmd(ctx, workload.target, server.port, pin, duration=duration, warmup=warmup)
    pid = server.worker_pids[0]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = proc_cpu_ns(pid)
    data, problem = run_client(cmd, duration + warmup + 5)
    w1 = proc_cpu_ns(pid)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rec = {"side": server.label,
           "client_process_cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)}
    if w0 is not None and w1 is not None:
        rec["worker_cpu_ns"] = w1 - w0  # over warm-up and measured time both
    if data:
        lat = data["latency_us"]
        rec.update(throughput_rps=data["throughput_rps"], requests=data["requests"],
                   errors=data["errors"]["total"],
                   error_kinds={k: v for k, v in data["errors"].items() if k != "total" and v},
                   p50_us=lat["p50"], p90_us=lat["p90"], p99_us=lat["p99"],
                   mean_us=lat.get("mean"), duration_s=data["duration_s"],
                   client_cpu_pct=data["client_cpu"]["percent_of_one_core"],
                   in_flight_at_end=data["unfinished"]["in_flight_at_end"])
        # CPU per request over the whole run (warm-up included: it served requests too,
        # at the same rate), so divide by the whole run's requests, estimated from the rate
        if rec.get("worker_cpu_ns") and data["duration_s"] > 0 and data["requests"]:
            total_s = data["duration_s"] + warmup
            rec["cpu_us_per_request"] = rec["worker_cpu_ns"] / 1e3 / (
                data["throughput_rps"] * total_s)
            rec["worker_busy_pct"] = 100.0 * rec["worker_cpu_ns"] / 1e9 / total_s
        if data["requests"] == 0:
            rec["starved"] = True  # not one reply in the window: the CPUs went elsewhere
        if data["errors"]["total"]:
            problem = (problem + "; " if problem else "") + (
                f"{data['errors']['total']} client errors {rec['error_kinds']}")
    if problem:
        rec["problem"] = problem
    return rec


def burst_together(ctx, workload, servers, order):
    """Both servers loaded at once, a fixed number of requests each (clients started in
    `order`); per side the worker's CPU over the burst divided by the requests it served."""
    cmds = {s: client_cmd(ctx, workload.target, servers[s].port, 0,
                          requests=ctx.together_requests, duration=ctx.together_cap_s)
            for s in order}
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = {s: proc_cpu_ns(servers[s].worker_pids[0]) for s in order}
    procs = {s: start_client(cmds[s]) for s in order}
    results = {s: finish_client(procs[s], ctx.together_cap_s) for s in order}
    w1 = {s: proc_cpu_ns(servers[s].worker_pids[0]) for s in order}
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    recs = []
    for position, side in enumerate(order):
        data, problem = results[side]
        rec = {"side": side, "position": position}
        if w0[side] is not None and w1[side] is not None:
            rec["worker_cpu_ns"] = w1[side] - w0[side]
        if data:
            lat = data["latency_us"]
            rec.update(throughput_rps=data["throughput_rps"], requests=data["requests"],
                       errors=data["errors"]["total"], p50_us=lat["p50"], p90_us=lat["p90"],
                       p99_us=lat["p99"], duration_s=data["duration_s"],
                       client_cpu_pct=data["client_cpu"]["percent_of_one_core"],
                       in_flight_at_end=data["unfinished"]["in_flight_at_end"])
            served = data["requests"] + data["errors"]["total"] + rec["in_flight_at_end"]
            if rec.get("worker_cpu_ns") and data["requests"]:
                rec["cpu_us_per_request"] = rec["worker_cpu_ns"] / 1e3 / served
            else:
                rec["starved"] = True
            if data["errors"]["total"]:
                problem = (problem + "; " if problem else "") + (
                    f"{data['errors']['total']} client errors")
        if problem:
            rec["problem"] = problem
        recs.append(rec)
    recs[0]["client_process_cpu_s"] = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    return recs


def run_round(ctx, workload, round_no):
    """A fresh before and after server, a warm-up each, then `pairs` pairs of bursts in the
    order B A A B B A ... (or A B B A ... on odd rounds); both servers checked and stopped."""
    pin = 1 if workload.pinned else None
    first = SIDES if round_no % 2 == 0 else tuple(reversed(SIDES))
    servers = {side: new_server(ctx, side, workload, pin=pin) for side in SIDES}
    recs, problems = [], []
    rnd = {"workload": workload.key, "round": round_no, "load_1m_before": loadavg()[0]}
    try:
        for side in first:
            servers[side].start()
        rnd["server_cmds"] = {s: shown(ctx, servers[s].cmd) for s in SIDES}
        rnd["client_cmd"] = shown(ctx, client_cmd(
            ctx, workload.target, "PORT", 0 if workload.pinned else None,
            duration=ctx.together_cap_s if workload.together else ctx.burst_s,
            warmup=None if workload.together else ctx.burst_warmup_s,
            requests=ctx.together_requests if workload.together else None))
        for side in first:  # first page faults, caches: not recorded
            w = burst(ctx, workload, servers[side], ctx.warm_s, 0)
            if w.get("problem"):
                problems.append(f"warm-up {side}: {w['problem']}")
        m0 = cpu_times()
        wall = time.monotonic()
        for p in range(ctx.pairs):
            order = first if p % 2 == 0 else tuple(reversed(first))
            if workload.together:
                group = burst_together(ctx, workload, servers, order)
            else:
                group = [burst(ctx, workload, servers[side], ctx.burst_s, ctx.burst_warmup_s)
                         for side in order]
                for position, rec in enumerate(group):
                    rec["position"] = position
            for rec in group:
                rec.update(workload=workload.key, round=round_no, pair=p)
                recs.append(rec)
                if rec.get("problem"):
                    problems.append(f"pair {p} {rec['side']}: {rec['problem']}")
        wall = time.monotonic() - wall
        ours = sum(r.get("client_process_cpu_s", 0) + r.get("worker_cpu_ns", 0) / 1e9
                   for r in recs)
        record_machine_use(rnd, m0, cpu_times(), ours, wall, ctx.nproc)
        time.sleep(0.05)
        for side in SIDES:  # each build's scoreboard, read by that build's prefork-top
            board = servers[side].scoreboard()
            if not board:
                problems.append(f"{side}: its prefork-top could not read its scoreboard")
                continue
            t = board["totals"]
            rnd[f"scoreboard_requests_{side}"] = t["requests"]
            answered = sum(r.get("requests", 0) for r in recs if r["side"] == side)
            if t["requests"] < answered:
                problems.append(f"{side}: scoreboard counted {t['requests']} requests, the "
                                f"client {answered} in its measured windows alone")
            if t.get("worker_restarts"):
                problems.append(f"{side}: {t['worker_restarts']} worker restarts")
    except RuntimeError as e:
        problems.append(str(e))
    finally:
        stop_servers(servers, SIDES, rnd, problems)
    end_round(ctx, rnd, problems, f"{workload.key} round {round_no}")
    return rnd, recs


# --- callgrind ----------------------------------------------------------------------------


def callgrind_run(ctx, side, target, connections, requests):
    outdir = tempfile.mkdtemp(prefix="cg.", dir=ctx.logdir)
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outdir}/cg.%p",
               "--dump-instr=no", "--log-file=" + os.path.join(outdir, "valgrind.%p.log")]
    wl = Workload("cg", "", target, False)
    server = new_server(ctx, side, wl, wrapper=wrapper)
    rec = {"side": side, "target": target, "connections": connections,
           "requests_asked": requests}
    problem, data, status = None, None, None
    saved = ctx.connections
    try:
        server.start(timeout=90)
        ctx.connections = connections
        cmd = client_cmd(ctx, target, server.port, None, requests=requests, duration=120)
        rec["client_cmd"], rec["server_cmd"] = shown(ctx, cmd), shown(ctx, server.cmd)
        data, problem = run_client(cmd, 120)
    except RuntimeError as e:
        problem = str(e)
    finally:
        ctx.connections = saved
        status = server.stop(timeout=60)
    rec["server_exit"] = status
    if data:
        rec.update(requests=data["requests"], errors=data["errors"]["total"],
                   in_flight_at_end=data["unfinished"]["in_flight_at_end"])
    path = os.path.join(outdir, f"cg.{server.worker_pids[0]}") if server.worker_pids else None
    if path and os.path.exists(path):
        rec["worker_ir"] = callgrind_totals(path)
        if target == "framed" and connections == ctx.cg_configs[0][1]:
            rec["functions"] = callgrind_functions(path)
    else:
        problem = (problem + "; " if problem else "") + "no callgrind output for the worker"
    if problem or status != 0 or (data and data["errors"]["total"]) or (
            data and data["requests"] != requests):
        rec["problem"] = problem or (f"server exit {status}, {rec.get('requests')} answered, "
                                     f"{rec.get('errors')} errors")
        ctx.problems.append(f"callgrind {side} {target} C={connections} {requests}: "
                            f"{rec['problem']}" + server.log_tail())
        say("PROBLEM: " + ctx.problems[-1])
    shutil.rmtree(outdir, ignore_errors=True)
    return rec


def callgrind_phase(ctx):
    runs, by_config, functions = [], {}, {}
    for target, connections in ctx.cg_configs:
        if time.monotonic() > ctx.cg_deadline:
            ctx.problems.append(f"callgrind: time budget spent, {target} C={connections} "
                                "not measured")
            continue
        key = f"{target}, {connections} {'socket' if target == 'udp' else 'connection'}" + (
            "s" if connections > 1 else "")
        per = {}
        for side in SIDES:
            small, big = (callgrind_run(ctx, side, target, connections, n)
                          for n in (ctx.cg_small, ctx.cg_big))
            say(f"callgrind {side} {key}: {small.get('worker_ir')} / {big.get('worker_ir')} Ir")
            runs += [small, big]
            if (small.get("worker_ir") and big.get("worker_ir") and not small.get("problem")
                    and not big.get("problem")):
                dn = big["requests"] - small["requests"]
                per[side] = (big["worker_ir"] - small["worker_ir"]) / dn
                if small.get("functions") and big.get("functions"):
                    functions[side] = {
                        f: (big["functions"].get(f, 0) - small["functions"].get(f, 0)) / dn
                        for f in set(big["functions"]) | set(small["functions"])}
        by_config[key] = None if len(per) != 2 else {
            "target": target, "connections": connections,
            "ir_per_request_before": per["before"], "ir_per_request_after": per["after"],
            "difference": per["after"] - per["before"],
            "ratio": per["after"] / per["before"]}
    for r in runs:
        r.pop("functions", None)
    top = []
    if len(functions) == 2:
        names = set(functions["before"]) | set(functions["after"])
        rows = [(f, functions["before"].get(f, 0.0), functions["after"].get(f, 0.0))
                for f in names]
        rows = [r for r in rows if abs(r[1]) >= 1 or abs(r[2]) >= 1]
        rows.sort(key=lambda r: -max(abs(r[1]), abs(r[2])))
        top = [{"function": f, "before": b, "after": a} for f, b, a in rows[:30]]
    return {"runs": runs, "by_config": by_config, "functions_per_request": top}


# --- statistics ---------------------------------------------------------------------------


METRICS = ("throughput_rps", "p50_us", "p99_us", "cpu_us_per_request")


def summarize(workload, rounds, recs):
    bad = {r["round"] for r in rounds if r["workload"] == workload.key and r.get("problems")}
    rs = [r for r in recs if r["workload"] == workload.key and r["round"] not in bad
          and not r.get("problem")]
    by = {(r["round"], r["pair"], r["side"]): r for r in rs}
    ratios = {m: [] for m in METRICS}
    first = []
    for (rd, p, side), b in by.items():
        if side != "before":
            continue
        a = by.get((rd, p, "after"))
        if not a:
            continue
        for m in METRICS:
            if a.get(m) and b.get(m):
                ratios[m].append(a[m] / b[m])
        x, y = (a, b) if a["position"] == 0 else (b, a)
        first.append(x["throughput_rps"] / y["throughput_rps"])
    out = {"pairs": len(ratios["throughput_rps"]),
           "starved_bursts": sum(1 for r in rs if r.get("starved")),
           "ratio_after_before": {m: summary(v) for m, v in ratios.items()},
           "first_over_second_throughput": summary(first)}
    for side in SIDES:
        ss = [r for r in rs if r["side"] == side]
        out[side] = {f: summary([r.get(f) for r in ss]) for f in (
            *METRICS, "p90_us", "worker_busy_pct", "client_cpu_pct")}
    rr = [r for r in rounds if r["workload"] == workload.key]
    out["rounds"] = len(rr)
    out["other_cpu_pct"] = summary([r.get("other_cpu_pct") for r in rr])
    out["steal_pct"] = summary([r.get("steal_pct") for r in rr])
    return out


# --- report -------------------------------------------------------------------------------


def ratio_text(s):
    if not s:
        return "–"
    t = f"**{s['median']:.3f}** (IQR {s['q1']:.3f}–{s['q3']:.3f}; min–max {s['min']:.3f}–{s['max']:.3f}"
    if s.get("ci95"):
        t += f"; 95% CI {s['ci95'][0]:.3f}–{s['ci95'][1]:.3f}"
    return t + ")"


def reading(metric, s, higher_is_better):
    """A sentence on one ratio: within noise when its 95% CI of the median holds 1."""
    if not s:
        return f"{metric}: no data"
    lo, hi = s.get("ci95", [s["min"], s["max"]])
    pct = 100.0 * (s["median"] - 1.0)
    if lo <= 1.0 <= hi:
        return f"{metric} {pct:+.1f}%, within noise (the 95% CI of the median holds 1)"
    better = (s["median"] > 1.0) == higher_is_better
    return f"{metric} {pct:+.1f}% ({'better' if better else 'worse'}; 95% CI {lo:.3f}–{hi:.3f})"


def write_markdown(path, data):
    m, p = data["machine"], data["parameters"]
    b, a = data["builds"]["before"], data["builds"]["after"]
    L = []
    add = L.append
    add("# Protocol API reshape: framed TCP and UDP, before vs after")
    add("")
    add(f"Generated by `{data['command']}` on {m['date']} in {data['elapsed_s']:.0f} s; "
        "every burst in `protocol-api.json`."
        + (" **Quick smoke run: too few pairs for conclusions.**" if p["quick"] else ""))
    add("")
    add(f"- **before**: `{b['commit'][:12]}` {b['subject']}")
    add(f"- **after**: `{a['commit'][:12]}` {a['subject']}")
    add(f"- the same load generator for both: the after build's `prefork-bench`.")
    add("")
    add("Ratios are after ÷ before, per pair of bursts (the two bursts of a pair run a second "
        "apart on fresh-per-round servers); median (IQR; min–max; 95% confidence interval of "
        "the median). Throughput: higher is better; latency and CPU per request: lower is "
        "better.")
    add("")
    add("| workload | pairs | throughput | p50 latency | p99 latency | worker CPU / request |")
    add("|---|---:|---|---|---|---|")
    for w in WORKLOADS:
        s = data["summary"].get(w.key)
        if not s:
            continue
        r = s["ratio_after_before"]
        add(f"| {w.title} | {s['pairs']} | {ratio_text(r['throughput_rps'])} | "
            f"{ratio_text(r['p50_us'])} | {ratio_text(r['p99_us'])} | "
            f"{ratio_text(r['cpu_us_per_request'])} |")
    add("")
    sbs = [w for w in TOGETHER if data["summary"].get(w.key)]
    if sbs:
        add("Side by side: both servers on CPU 1 and both clients on CPU 0, loaded at the same "
            f"time ({p['together_requests']} requests each, at most {p['together_cap_s']} s), "
            "so whatever the host and the other users do to those CPUs hits both builds alike; "
            "the scheduler time-slices the two workers every few ms. Compared: each worker's "
            "CPU time per request (after ÷ before), far steadier than throughput between "
            "bursts on a busy machine.")
        add("")
        add("| workload | bursts | worker CPU / request, after ÷ before | before µs/request "
            "| after µs/request |")
        add("|---|---:|---|---:|---:|")
        for w in sbs:
            s = data["summary"][w.key]
            c = s["ratio_after_before"]["cpu_us_per_request"]
            add(f"| {w.title} | {c['n'] if c else 0} | {ratio_text(c)} | "
                f"{f3(s['before']['cpu_us_per_request']['median']) if s['before']['cpu_us_per_request'] else '–'} | "
                f"{f3(s['after']['cpu_us_per_request']['median']) if s['after']['cpu_us_per_request'] else '–'} |")
        add("")
    cg = data["callgrind"]
    if cg and cg.get("by_config"):
        add("Instructions per request in the worker (callgrind, user space only):")
        add("")
        add("| workload | before Ir/request | after Ir/request | difference | after ÷ before |")
        add("|---|---:|---:|---:|---:|")
        for k, v in cg["by_config"].items():
            if v:
                add(f"| {k} | {v['ir_per_request_before']:.1f} | "
                    f"{v['ir_per_request_after']:.1f} | {v['difference']:+.1f} | "
                    f"{v['ratio']:.3f} |")
        add("")
    elif data.get("callgrind_skipped"):
        add(f"Instructions per request: not measured ({data['callgrind_skipped']}).")
        add("")
    add("## Reading")
    add("")
    for w in WORKLOADS:
        s = data["summary"].get(w.key)
        if not s:
            continue
        r = s["ratio_after_before"]
        add(f"- {w.title}: " + "; ".join([
            reading("throughput", r["throughput_rps"], True),
            reading("p50", r["p50_us"], False), reading("p99", r["p99_us"], False),
            reading("CPU/request", r["cpu_us_per_request"], False)]) + ".")
    busy = [(w.title, data["summary"][w.key]["before"]["worker_busy_pct"]["median"])
            for w in WORKLOADS if data["summary"].get(w.key)
            and data["summary"][w.key]["before"]["worker_busy_pct"]]
    idle = [f"{t} {b:.0f}%" for t, b in busy if b < 90]
    if idle:
        add("- The worker was not saturated in the alternating bursts (median busy share of "
            "its CPU, before side: " + ", ".join(idle) + "): there, throughput and latency "
            "follow the CPU share the rest of the machine left to the worker and the client, "
            "so they say \"not measurably worse under these conditions\" at best; the "
            "side-by-side CPU per request and the instruction counts below measure the "
            "code's own cost.")
    for w in TOGETHER:
        s = data["summary"].get(w.key)
        if s:
            add(f"- {w.title}: "
                + reading("CPU/request", s["ratio_after_before"]["cpu_us_per_request"], False)
                + ".")
    if cg and cg.get("by_config"):
        add("- Instructions (user space, repeatable): " + "; ".join(
            f"{k} {v['difference']:+.1f} per request ({100 * (v['ratio'] - 1):+.1f}%)"
            for k, v in cg["by_config"].items() if v) + ".")
        fn = cg.get("functions_per_request") or []
        gone = [r for r in fn if r["after"] < 0.5 <= r["before"]]
        new = [r for r in fn if r["before"] < 0.5 <= r["after"]]
        kept = [r for r in fn if r["before"] >= 0.5 and r["after"] >= 0.5
                and abs(r["after"] - r["before"]) >= 1]
        if fn:
            add(f"  On the framed path (exclusive Ir per request, {cg['functions_config']}), "
                f"functions only before: {sum(r['before'] for r in gone):.0f} ("
                + ", ".join(f"`{short(r['function'])}` {r['before']:.0f}" for r in gone)
                + f"); only after: {sum(r['after'] for r in new):.0f} ("
                + ", ".join(f"`{short(r['function'])}` {r['after']:.0f}" for r in new)
                + "); in both, changed: "
                + (", ".join(f"`{short(r['function'])}` {r['before']:.0f} → {r['after']:.0f}"
                             for r in kept) or "none") + ".")
    add("")
    add("## Absolute figures (medians over the bursts of each side)")
    add("")
    add("| workload | side | throughput req/s | p50 µs | p90 µs | p99 µs | worker CPU µs/request "
        "| worker busy % | client CPU % |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in WORKLOADS + TOGETHER:
        s = data["summary"].get(w.key)
        if not s:
            continue
        for side in SIDES:
            x = s[side]

            def md(f, fmt=f1):
                return "–" if not x[f] else fmt(x[f]["median"])
            add(f"| {w.title} | {side} | {md('throughput_rps', f0)} | {md('p50_us')} | "
                f"{md('p90_us')} | {md('p99_us')} | {md('cpu_us_per_request', f3)} | "
                f"{md('worker_busy_pct', f0)} | {md('client_cpu_pct', f0)} |")
    add("")
    add("First burst of a pair ÷ second (throughput), median: " + ", ".join(
        f"{w.key} {data['summary'][w.key]['first_over_second_throughput']['median']:.3f}"
        for w in WORKLOADS + TOGETHER if data["summary"].get(w.key)
        and data["summary"][w.key]["first_over_second_throughput"])
        + " (near 1: the order within a pair does not matter; the alternation cancels it).")
    add("")
    if cg and cg.get("functions_per_request"):
        add("Where the framed path's instructions go (callgrind_annotate, exclusive Ir per "
            f"request: the large run minus the small one, {cg['functions_config']}; "
            "the largest 30):")
        add("")
        add("| function | before | after |")
        add("|---|---:|---:|")
        for row in cg["functions_per_request"]:
            name = row["function"].replace("|", "\\|")
            if len(name) > 110:
                name = name[:107] + "..."
            add(f"| `{name}` | {row['before']:.1f} | {row['after']:.1f} |")
        add("")
    add("## Machine and conditions")
    add("")
    add(f"- {cpus_text(m)}, {m['cpu']}"
        + (" (virtual machine: the CPU reports a hypervisor)" if m.get("virtual_machine")
           else "")
        + f", {m['memory_gib']} GiB RAM, Linux {m['kernel']}, {m['os']}, {m['libc']}; "
        f"transparent hugepages {m['transparent_hugepage']}; both builds "
        f"{b['build_type']} / {a['build_type']}"
        + (f"; {m['valgrind']}" if m.get("valgrind") else "; no valgrind") + ".")
    pf = data["page_fault_us"]
    add(f"- First touch of a fresh anonymous page: {pf['before']} µs before the run, "
        f"{pf['after']} µs after (0.1–0.5 µs is usual; these servers allocate little per "
        "request, so this matters little here, but it tells a slow machine from a slow "
        "build).")
    la = data["load"]
    dur = la.get("during")
    add(f"- Load average (1, 5, 15 min): {la['before']} before, {la['after']} after"
        + (f"; 1 min at each round's start: median {dur['median']:.2f}, max {dur['max']:.2f}"
           if dur else "")
        + ". The benchmark itself keeps about 2 processes runnable (client and worker).")
    oc, st = data["other_cpu_pct"], data["steal_pct"]
    if oc:
        add(f"- CPU used during the bursts by anything but the worker and the client (other "
            f"users of the machine, e.g. compilers; kernel threads; this script), from "
            f"/proc/stat, per round: median {oc['median']:.1f}%, max {oc['max']:.1f}% of "
            f"{cpus_text(m)}; stolen by the hypervisor: median "
            f"{st['median']:.1f}%, max {st['max']:.1f}%. "
            + ("**The machine was busy with other work during this run**: the absolute "
               "figures are far below a quiet machine's; the interleaving protects the "
               "ratios, not the absolute figures."
               if oc["max"] > 10 or (la["before"][0] > 1.5) else
               "The machine was quiet apart from this benchmark."))
    starved = {w.key: data["summary"][w.key]["starved_bursts"] for w in WORKLOADS + TOGETHER
               if data["summary"].get(w.key) and data["summary"][w.key]["starved_bursts"]}
    if starved:
        add("- Starved bursts (not one reply in the measured window: neither worker nor client "
            "got a CPU for about a second), left out of the ratios with their partner: "
            + ", ".join(f"{k} {v}" for k, v in starved.items()) + ".")
    add("- **The load generator shares the 2 vCPUs with the server.** Pinned: the server "
        "(master and its one worker) on CPU 1 (`taskset -c 1`), the client on CPU 0 "
        "(`taskset -c 0`); unpinned: where the scheduler puts them.")
    add("")
    add("## Method")
    add("")
    add(f"- Per workload, {p['rounds']} rounds (interleaved with the other workloads' rounds), "
        f"each a fresh before server and a fresh after server (`bench_server`, one worker, "
        f"port 0, ready in its own build's scoreboard), a {p['warm_s']} s warm-up burst each "
        f"(not recorded), then {p['pairs']} pairs of bursts alternating B A A B … (the next "
        f"round A B B A …). A burst is one `prefork-bench` run: {ctx_conn(p)} connections "
        f"(or UDP sockets) on one thread, closed loop, 64-byte requests echoed, "
        f"{p['burst_warmup_s']} s of load not measured, then {p['burst_s']} s measured.")
    add(f"- Side by side: per workload {p['rounds']} rounds of a fresh pair of servers, both "
        f"on CPU 1, {p['pairs']} bursts each loading both at once (their clients on CPU 0, "
        "started in alternating order), a fixed number of requests per side; CPU per request "
        "= the worker's schedstat time over the burst ÷ the requests it served.")
    add("- Worker CPU per request: the worker's `/proc/PID/schedstat` time over the burst "
        "(warm-up included) divided by the burst's requests (rate × whole burst time). Worker "
        "busy near 100%: the worker is the bottleneck and throughput measures its cost.")
    add("- After each round both scoreboards are read, each by its own build's `prefork-top`, "
        "and must have counted at least the requests the client measured.")
    if cg and cg.get("by_config"):
        add(f"- Callgrind: the server (one worker, unpinned) under `valgrind --tool=callgrind`, "
            f"{p['cg_small']} and then {p['cg_big']} requests from the same client; the "
            "worker's instructions per request are (Ir(large) − Ir(small)) ÷ (requests "
            "difference), so start-up, connection set-up and shutdown cancel out. Callgrind "
            "counts user-space instructions only; the system calls' kernel work (most of a "
            "request's cost here) is not in them.")
    add("")
    add(f"With `$BEFORE` = `{b['bins']}`, `$AFTER` = `{a['bins']}`:")
    add("")
    add("```sh")
    any_round = next((r for r in data["rounds"] if r.get("server_cmds")), None)
    if any_round:
        for side in SIDES:
            add(any_round["server_cmds"][side])
        add(any_round["client_cmd"])
    add("```")
    add("")
    add("## Problems seen")
    add("")
    if data["problems"]:
        for pr in data["problems"]:
            add(f"- {pr}")
    else:
        add("None: every burst answered without a client error, every scoreboard was read by "
            "its own build's prefork-top and counted every measured request, no worker "
            "restarted, and every server exited 0 on SIGTERM and removed its scoreboard.")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def short(name):
    """A C++ function name without its argument list."""
    name = name.replace("(anonymous namespace)", "{anonymous}")
    cut = name.find("(")
    return name if cut <= 0 else name[:cut] + "()"


def ctx_conn(p):
    return p["connections"]


# --- main ---------------------------------------------------------------------------------


class Ctx:
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="source tree (with build/) or build dir")
    parser.add_argument("--after", required=True, help="source tree (with build/) or build dir")
    parser.add_argument("--out", help="directory to write (default: a new temporary one)")
    parser.add_argument("--rounds", type=int, help="fresh server pairs per workload (4)")
    parser.add_argument("--pairs", type=int, help="pairs of bursts per round (5)")
    parser.add_argument("--burst", type=float, help="measured seconds per burst (1.0)")
    parser.add_argument("--budget", type=float, default=270.0,
                        help="no new round of the load phase starts when it would end later "
                             "than this many seconds after the start (270); no new callgrind "
                             "workload starts after budget + 60 s")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run (about 30 s)")
    args = parser.parse_args()

    ctx = Ctx()
    ctx.bins = {"before": bins_of(parser, args.before), "after": bins_of(parser, args.after)}
    ctx.client = os.path.join(ctx.bins["after"], "prefork-bench")
    if not os.access(ctx.client, os.X_OK):
        parser.error(f"{ctx.client} is missing")
    q = args.quick
    ctx.rounds = args.rounds or (1 if q else 4)
    ctx.pairs = args.pairs or (2 if q else 5)
    ctx.burst_s = args.burst or (0.3 if q else 1.0)
    ctx.burst_warmup_s = 0.1 if q else 0.2
    ctx.warm_s = 0.2 if q else 0.5
    ctx.connections = 16
    ctx.together_requests = 3000 if q else 20000
    ctx.together_cap_s = 1.0 if q else 2.0
    ctx.cg_small, ctx.cg_big = (200, 1200) if q else (2000, 22000)
    ctx.cg_configs = [("framed", 16)] if q else [("framed", 16), ("framed", 1), ("udp", 16)]
    ctx.nproc = len(os.sched_getaffinity(0))
    ctx.problems = []
    out = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="protocol-api.")
    os.makedirs(out, exist_ok=True)
    ctx.logdir = tempfile.mkdtemp(prefix="compare-builds-logs.")
    stop_all_at_exit(PREFIX)

    started = time.monotonic()
    command = "python3 bench/compare_builds.py " + " ".join(sys.argv[1:])
    mach = machine(os.path.dirname(ctx.bins["after"]))
    mach["valgrind"] = valgrind_version()
    if ctx.nproc < 2:
        say("fewer than 2 usable CPUs: the pinned workloads are skipped")
    pf_before = page_fault_us()
    builds = {s: build_info(ctx.bins[s]) for s in SIDES}
    for s in SIDES:
        say(f"{s}: {builds[s]['commit'][:12]} {builds[s]['subject'][:60]} ({ctx.bins[s]})")

    workloads = [w for w in WORKLOADS + TOGETHER if ctx.nproc >= 2 or not w.pinned]
    rounds, recs = [], []
    budget_hit = False
    last = 0.0
    for rd in range(ctx.rounds):
        t_round = time.monotonic()
        if t_round - started + last > args.budget:
            budget_hit = True
            ctx.problems.append(f"load budget of {args.budget:.0f} s spent after {rd} rounds "
                                f"of {ctx.rounds}: fewer pairs than asked")
            break
        for w in workloads:
            say(f"round {rd + 1}/{ctx.rounds}: {w.title}")
            rnd, rs = run_round(ctx, w, rd)
            rounds.append(rnd)
            recs += rs
        last = time.monotonic() - t_round
    callgrind, skipped = None, None
    if args.no_callgrind:
        skipped = "--no-callgrind"
    elif not mach["valgrind"]:
        skipped = "valgrind is not installed"
    else:
        ctx.cg_deadline = started + args.budget + 60
        callgrind = callgrind_phase(ctx)
        callgrind["functions_config"] = (f"{ctx.cg_configs[0][0]}, {ctx.cg_configs[0][1]} "
                                         "connections")
    pf_after = page_fault_us()
    summaries = {w.key: summarize(w, rounds, recs) for w in workloads}
    elapsed = time.monotonic() - started
    data = {
        "command": command,
        "machine": mach,
        "builds": builds,
        "client": ctx.client,
        "elapsed_s": round(elapsed, 1),
        "parameters": {"rounds": ctx.rounds, "pairs": ctx.pairs, "burst_s": ctx.burst_s,
                       "burst_warmup_s": ctx.burst_warmup_s, "warm_s": ctx.warm_s,
                       "connections": ctx.connections, "size": 64,
                       "together_requests": ctx.together_requests,
                       "together_cap_s": ctx.together_cap_s, "cg_small": ctx.cg_small,
                       "cg_big": ctx.cg_big, "cg_configs": ctx.cg_configs, "quick": q,
                       "budget_s": args.budget, "budget_hit": budget_hit},
        "page_fault_us": {"before": pf_before, "after": pf_after},
        "load": {"before": mach["load_average_before"], "after": loadavg(),
                 "during": summary([r.get("load_1m_before") for r in rounds])},
        "other_cpu_pct": summary([r.get("other_cpu_pct") for r in rounds]),
        "steal_pct": summary([r.get("steal_pct") for r in rounds]),
        "summary": summaries,
        "rounds": rounds,
        "bursts": recs,
        "callgrind": callgrind,
        "callgrind_skipped": skipped,
        "problems": ctx.problems,
    }

    def clean(v):
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items() if not (k == "error_kinds" and not x)}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    with open(os.path.join(out, "protocol-api.json"), "w") as f:
        json.dump(clean(data), f, indent=1)
        f.write("\n")
    write_markdown(os.path.join(out, "protocol-api.md"), data)
    shutil.rmtree(ctx.logdir, ignore_errors=True)
    say(f"done in {elapsed:.0f} s: {os.path.join(out, 'protocol-api.md')}")
    for w in workloads:
        r = summaries[w.key]["ratio_after_before"]
        say(w.title + ": " + ", ".join(
            f"{k} {r[k]['median']:.3f}" for k in METRICS if r[k]))
    if callgrind:
        for k, v in callgrind["by_config"].items():
            if v:
                say(f"callgrind {k}: {v['ir_per_request_before']:.1f} -> "
                    f"{v['ir_per_request_after']:.1f} Ir/request")
    if ctx.problems:
        say(f"{len(ctx.problems)} problem(s): see 'Problems seen'")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
