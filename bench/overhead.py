#!/usr/bin/env python3
"""What updating the scoreboard costs a worker: bench_server with --worker-stats on
(every request counted in a sequence-locked section, its handler + write time read
from CLOCK_MONOTONIC twice and recorded in the slot's latency histogram, bytes in
and out counted per read and write) against --worker-stats off (none of that), the
same load on both sides.

- Throughput, server CPU per request and latency: one worker pinned to vCPU 1, the
  client pinned to vCPU 0. A round starts a fresh pair of servers, one on and one
  off, and alternates short client bursts between them (on off off on …), so every
  on burst has an off partner a fraction of a second away: the vCPUs of this VM
  drift by 10-30% over seconds, far more than the effect. Framed keep-alive (the
  cheapest request, so the worst case for the relative overhead) decides; the same
  unpinned, UDP, and a connection per request are reported too.
- Instructions per request (user space, valgrind's callgrind): deterministic
  evidence that does not depend on the noise of a shared VM. Skipped with a note
  when valgrind is not installed.

Writes overhead.md (tables, the target line) and overhead.json (every burst).
Builds nothing: build first (cmake -S . -B build && cmake --build build -j2).
Full run: writes bench/results/ (about 2 minutes on 2 vCPUs). --quick: a smoke run
(about 10 s) into --out DIR or a new temporary directory; it never writes
bench/results/.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (add_run_arguments, bins_and_out, command_text, cpu_times,  # noqa: E402
                      cpu_word, cpus_text, finish_client, loadavg, machine, run_client, say,
                      Server, start_client, stop_all, stop_all_at_exit, virtual_text)
from paired import (callgrind_functions, callgrind_totals, end_round, f0, f1, f2,  # noqa: E402
                    f3, record_machine_use, stop_servers, summary, valgrind_version)

PREFIX = f"prefork_overhead_{os.getpid()}_"  # our scoreboard names, and only ours
TARGET_PCT = 2.0  # the scoreboard may cost at most this share of the throughput
SIDES = ("on", "off")


class Feature:
    """What the two sides differ by: the flags each side adds, and the words for it."""

    def __init__(self, key, flags, heading, stem, on_text, off_text, counts_off, what,
                 functions):
        self.key, self.flags, self.heading, self.stem = key, flags, heading, stem
        self.what = what  # "the scoreboard adds": what the on side adds
        self.whose = what.rsplit(" ", 1)[0] + ("'s" if what.endswith("adds") else "'")
        self.functions = functions  # callgrind_annotate names of its code (a regex)
        self.on_text, self.off_text = on_text, off_text
        self.counts_off = counts_off  # whether the off side's scoreboard counts requests


FEATURES = {
    "stats": Feature(
        "stats", {"on": ["--worker-stats", "on"], "off": ["--worker-stats", "off"]},
        "What updating the scoreboard costs", "overhead",
        "**on** (`--worker-stats on`, the default): per request, a sequence-locked section "
        "counts it when its handler starts, two `CLOCK_MONOTONIC` reads time handler + write, "
        "and the time goes into the slot's 264 KiB log-linear histogram after the write; every "
        "read and write adds its bytes in another section.",
        "**off** (`--worker-stats off`): none of those updates and no clock read; the "
        "identity, state and heartbeat of the slot are still kept.", False, "the scoreboard adds",
        r"SlotWriter::|RequestTimer::|Histogram|clock_gettime|vdso"),
    # Issue 10: timers must cost nothing per request on the hot path.
    "timeouts": Feature(
        "timeouts", {"on": [], "off": ["--idle-timeout", "0", "--read-timeout", "0",
                                       "--write-timeout", "0"]},
        "What the connection timeouts cost", "overhead-timeouts",
        "**on** (the defaults, `--idle-timeout 75 --read-timeout 60 --write-timeout 60`): "
        "each connection is linked in its listener's idle, read or write timer list, re-armed "
        "after its events at most once per loop turn and lazily (a deadline moves only by more "
        "than 1/16 of its timeout), with one clock read per loop turn and epoll_wait's timeout "
        "set to the nearest deadline.",
        "**off** (`--idle-timeout 0 --read-timeout 0 --write-timeout 0`): no timer is armed; "
        "everything else (the scoreboard's counting included) is the same.", True,
        "the timers add", r"TimerList|TimerNode|arm_timeout|until_next_timeout|expire_timeouts|"
        r"take_progress|timers\("),
}
class Variant:
    """One workload: how the server listens, how the client loads it, pinned or not."""

    def __init__(self, key, title, target, connections, requests, rounds, bursts, pinned=True,
                 new_connection=False, warmup=None, together=False):
        self.key, self.title, self.target = key, title, target
        self.connections, self.requests = connections, requests
        self.rounds, self.bursts = rounds, bursts
        self.pinned, self.new_connection = pinned, new_connection
        # together: both servers share vCPU 1 and both clients vCPU 0, loaded at the same time
        self.together = together
        self.warmup = warmup if warmup is not None else max(requests // 4, connections)

    def listen_flag(self):
        return "--udp" if self.target == "udp" else "--framed"


# --- running servers and the client -------------------------------------------------------


def server_of(ctx, side, listen_flag, pin=None, wrapper=()):
    """A bench_server with one worker and the feature's `side` flags (not started yet)."""
    return Server(ctx.bins, ctx.logdir, PREFIX, side, listen_flag,
                  ["--workers", "1"] + ctx.feature.flags[side], 1, pin=pin, wrapper=wrapper)


def client_cmd(bins, variant, port, requests, cap_s, pin):
    cmd = ([] if pin is None else ["taskset", "-c", str(pin)]) + [
        os.path.join(bins, "prefork-bench"), "--target", variant.target,
        "--address", f"127.0.0.1:{port}", "--connections", str(variant.connections),
        "--threads", "1", "--requests", str(requests), "--duration", str(cap_s),
        "--json", "--quiet"]
    if variant.new_connection:
        cmd.append("--new-connection")
    return cmd


def proc_cpu(pid):
    """(ns on a CPU from /proc/PID/schedstat, utime + stime ticks from /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            ns = int(f.read().split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return ns, int(fields[11]) + int(fields[12])  # utime, stime: fields 14, 15
    except (OSError, ValueError, IndexError):
        return None


def burst(ctx, variant, servers, order, requests):
    """A client run of `requests` against each server of `order`: one side alone, or both
    sides at the same time. One record per side, with its worker's CPU over the burst."""
    pin = 0 if variant.pinned else None
    cmds = [client_cmd(ctx.bins, variant, servers[side].port, requests, ctx.cap_s, pin)
            for side in order]
    before_w = [proc_cpu(servers[side].worker_pids[0]) for side in order]
    before_c = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic()
    results = [finish_client(proc, ctx.cap_s) for proc in [start_client(c) for c in cmds]]
    wall = time.monotonic() - wall
    after_c = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_w = [proc_cpu(servers[side].worker_pids[0]) for side in order]
    recs = []
    for position, side in enumerate(order):
        data, problem = results[position]
        rec = {"side": side, "position": position, "requests_asked": requests, "wall_s": wall}
        if before_w[position] and after_w[position]:
            rec["worker_cpu_ns"] = after_w[position][0] - before_w[position][0]
            rec["worker_cpu_ticks"] = after_w[position][1] - before_w[position][1]
        if data:
            rec.update(throughput_rps=data["throughput_rps"], requests=data["requests"],
                       errors=data["errors"]["total"],
                       error_kinds={k: v for k, v in data["errors"].items()
                                    if k != "total" and v},
                       p50_us=data["latency_us"]["p50"], p99_us=data["latency_us"]["p99"],
                       duration_s=data["duration_s"],
                       client_cpu_pct=data["client_cpu"]["percent_of_one_core"],
                       in_flight_at_end=data["unfinished"]["in_flight_at_end"])
            served = data["requests"] + data["errors"]["total"]
            if rec.get("worker_cpu_ns") is not None and served:
                rec["cpu_us_per_request"] = rec["worker_cpu_ns"] / 1e3 / served
                if data["duration_s"] > 0 and len(order) == 1:
                    rec["worker_busy_pct"] = (100.0 * rec["worker_cpu_ns"] / 1e9
                                              / data["duration_s"])
            if data["errors"]["total"]:
                problem = (problem + "; " if problem else "") + (
                    f"{data['errors']['total']} client errors {rec['error_kinds']}")
            if served != requests:
                problem = (problem + "; " if problem else "") + (
                    f"{data['requests']} answered + {data['errors']['total']} errors of "
                    f"{requests} asked (duration cap {ctx.cap_s} s?)")
        if problem:
            rec["problem"] = problem
        recs.append(rec)
    # the whole client processes (start, connects, load), reaped: RUSAGE_CHILDREN
    recs[0]["client_process_cpu_s"] = ((after_c.ru_utime + after_c.ru_stime)
                                       - (before_c.ru_utime + before_c.ru_stime))
    return recs


def run_round(ctx, variant, round_no):
    """A fresh pair of servers (on and off), a warm-up burst each, then `bursts` bursts per
    side: alternating (on off off on on off …), or, for a `together` variant, both sides at
    once (their clients started in alternating order); the servers checked and stopped."""
    pin = 1 if variant.pinned else None
    sides = SIDES if round_no % 2 else tuple(reversed(SIDES))
    servers = {side: server_of(ctx, side, variant.listen_flag(), pin=pin)
               for side in sides}
    bursts, problems, warm = [], [], {}
    rnd = {"variant": variant.key, "round": round_no, "load_1m_before": loadavg()[0]}
    try:
        for side in sides:
            servers[side].start()
        rnd["server_cmds"] = {side: command_text(servers[side].cmd) for side in sides}
        rnd["client_cmd"] = command_text(client_cmd(
            ctx.bins, variant, "PORT", variant.requests, ctx.cap_s,
            0 if variant.pinned else None))
        for side in sides:  # warm-up: first page faults, caches; not recorded
            w = burst(ctx, variant, servers, (side,), variant.warmup)[0]
            warm[side] = w.get("requests", 0)
            if w.get("problem"):
                problems.append(f"warm-up {side}: {w['problem']}")
        before_m = cpu_times()
        workers0 = {side: proc_cpu(servers[side].worker_pids[0]) for side in sides}
        wall = time.monotonic()
        for b in range(variant.bursts):
            order = sides if b % 2 == 0 else tuple(reversed(sides))
            groups = [order] if variant.together else [(side,) for side in order]
            for position, group in enumerate(groups):
                for rec in burst(ctx, variant, servers, group, variant.requests):
                    rec.update(variant=variant.key, round=round_no, burst=b + 1)
                    if not variant.together:
                        rec["position"] = position
                    bursts.append(rec)
                    if rec.get("problem"):
                        problems.append(f"burst {b + 1} {rec['side']}: {rec['problem']}")
        wall = time.monotonic() - wall
        after_m = cpu_times()
        workers1 = {side: proc_cpu(servers[side].worker_pids[0]) for side in sides}
        ours = sum(r.get("client_process_cpu_s", 0) for r in bursts) + sum(
            (workers1[s][0] - workers0[s][0]) / 1e9 for s in sides if workers0[s] and workers1[s])
        record_machine_use(rnd, before_m, after_m, ours, wall, ctx.nproc)
        time.sleep(0.05)  # the last reply is out before its counters are stored
        for side in sides:
            board = servers[side].scoreboard()
            if not board:
                problems.append(f"{side}: no scoreboard")
                continue
            t = board["totals"]
            rnd[f"scoreboard_requests_{side}"] = t["requests"]
            # The switch works: off counts nothing, on counts every request the client saw.
            answered = sum(r.get("requests", 0) for r in bursts if r["side"] == side) + \
                warm.get(side, 0)
            slack = sum(r.get("errors", 0) + r.get("in_flight_at_end", 0)
                        for r in bursts if r["side"] == side) + variant.connections
            counts = side == "on" or ctx.feature.counts_off
            if not counts and (t["requests"] or t["bytes_in"]):
                problems.append(f"--worker-stats off, yet the scoreboard counted "
                                f"{t['requests']} requests, {t['bytes_in']} bytes in")
            if counts and not answered <= t["requests"] <= answered + slack:
                problems.append(f"{side}: the scoreboard counted {t['requests']} requests, the "
                                f"client {answered} (warm-up included)")
            if t["worker_restarts"]:
                problems.append(f"{side}: {t['worker_restarts']} worker restarts")
    except RuntimeError as e:
        problems.append(str(e))
    finally:
        stop_servers(servers, sides, rnd, problems)
    end_round(ctx, rnd, problems, f"{variant.key} round {round_no}")
    return rnd, bursts


# --- callgrind ----------------------------------------------------------------------------


def callgrind_run(ctx, side, requests, target, connections):
    """The worker under callgrind, `requests` keep-alive (or UDP) requests: its total Ir."""
    outdir = tempfile.mkdtemp(prefix="overhead-cg.", dir=ctx.logdir)
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outdir}/cg.%p",
               "--dump-instr=no", "--log-file=" + os.path.join(outdir, "valgrind.%p.log")]
    variant = Variant("callgrind", "", target, connections, requests, 1, 1)
    server = server_of(ctx, side, variant.listen_flag(), wrapper=wrapper)
    rec = {"side": side, "requests_asked": requests, "target": target,
           "connections": connections}
    problem, data = None, None
    try:
        server.start(timeout=90)
        cmd = client_cmd(ctx.bins, variant, server.port, requests, 600, None)
        rec["client_cmd"] = command_text(cmd)
        rec["server_cmd"] = command_text(server.cmd)
        data, problem = run_client(cmd, 600)
    except RuntimeError as e:
        problem = str(e)
    finally:
        status = server.stop(timeout=60)
    rec["server_exit"] = status
    if data:
        rec["requests"] = data["requests"]
        rec["errors"] = data["errors"]["total"]
        rec["in_flight_at_end"] = data["unfinished"]["in_flight_at_end"]
        rec["throughput_rps"] = data["throughput_rps"]
    path = os.path.join(outdir, f"cg.{server.worker_pids[0]}") if server.worker_pids else None
    if path and os.path.exists(path):
        rec["worker_ir"] = callgrind_totals(path)
        if side == "on" and requests == ctx.cg_big and target == "framed":
            rec["functions"] = callgrind_functions(path, inclusive=True,
                                                   pattern=ctx.feature.functions)
    else:
        problem = (problem + "; " if problem else "") + "no callgrind output for the worker"
    if server.leak():
        problem = (problem + "; " if problem else "") + server.leak()
    if problem or status != 0 or (data and data["errors"]["total"]):
        rec["problem"] = problem or f"server exit {status}, errors {rec.get('errors')}"
        ctx.problems.append(f"callgrind {target} C={connections} {side} {requests} requests: "
                            f"{rec['problem']}" + server.log_tail())
        say("PROBLEM: " + ctx.problems[-1])
    shutil.rmtree(outdir, ignore_errors=True)
    return rec


def callgrind_phase(ctx):
    """Marginal instructions per request: Ir(big) - Ir(small) over the extra requests, so the
    start-up, the connections' set-up and the shutdown cancel out."""
    runs = []
    out = {}
    for target, connections in ctx.cg_configs:
        key = f"{target}, {connections} {'socket' if target == 'udp' else 'connection'}" + (
            "s" if connections > 1 else "")
        mine = []
        for side in SIDES:
            for n in (ctx.cg_small, ctx.cg_big):
                say(f"callgrind: {ctx.feature.key} {side}, {n} requests, {key}")
                mine.append(callgrind_run(ctx, side, n, target, connections))
        runs += mine
        per = {}
        for side in SIDES:
            small, big = [r for r in mine if r["side"] == side]
            if small.get("worker_ir") and big.get("worker_ir") and not small.get("problem") \
                    and not big.get("problem"):
                per[side] = (big["worker_ir"] - small["worker_ir"]) / (
                    big["requests"] - small["requests"])
        out[key] = None if len(per) != 2 else {
            "target": target, "connections": connections,
            "ir_per_request_on": per["on"], "ir_per_request_off": per["off"],
            "difference": per["on"] - per["off"],
            "overhead_pct": 100.0 * (per["on"] / per["off"] - 1.0)}
    functions = next((r["functions"] for r in runs if r.get("functions")), None)
    return {"runs": runs, "by_config": out, "functions_on_big": functions,
            "vdso": bool(functions and any("vdso" in f for f in functions)),
            "clocksource": clocksource()}


def clocksource():
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


# --- statistics ---------------------------------------------------------------------------


def summarize(variant, rounds, bursts):
    """Per-pair ratios (a burst on one server and the next burst on the other, seconds apart),
    per-round ratios (all the bursts of one pair of fresh servers), per-side medians."""
    bad = {r["round"] for r in rounds if r["variant"] == variant.key and r.get("problems")}
    bs = [r for r in bursts if r["variant"] == variant.key and r["round"] not in bad
          and not r.get("problem")]
    by = {(r["round"], r["burst"], r["side"]): r for r in bs}
    ratios, cpu_ratios, first, round_ratios, round_cpu = [], [], [], [], []
    for rd in range(1, variant.rounds + 1):
        agg = {side: [0, 0.0, 0, 0] for side in SIDES}  # requests, seconds, cpu ns, served
        for b in range(1, variant.bursts + 1):
            on, off = by.get((rd, b, "on")), by.get((rd, b, "off"))
            if not on or not off or not on.get("throughput_rps") or not off.get("throughput_rps"):
                continue
            ratios.append(on["throughput_rps"] / off["throughput_rps"])
            if on.get("cpu_us_per_request") and off.get("cpu_us_per_request"):
                cpu_ratios.append(on["cpu_us_per_request"] / off["cpu_us_per_request"])
            a, z = (on, off) if on["position"] == 0 else (off, on)
            first.append(a["throughput_rps"] / z["throughput_rps"])
            for r in (on, off):
                g = agg[r["side"]]
                g[0] += r["requests"]
                g[1] += r["duration_s"]
                g[2] += r.get("worker_cpu_ns", 0)
                g[3] += r["requests"] + r["errors"]
        if agg["on"][1] and agg["off"][1]:
            round_ratios.append((agg["on"][0] / agg["on"][1]) / (agg["off"][0] / agg["off"][1]))
            if agg["on"][2] and agg["off"][2]:
                round_cpu.append((agg["on"][2] / agg["on"][3]) / (agg["off"][2] / agg["off"][3]))
    out = {"pairs_used": len(ratios), "pairs": variant.rounds * variant.bursts,
           "rounds_used": len(round_ratios), "rounds": variant.rounds,
           "ratio_on_off": summary(ratios),
           "overhead_pct": summary([100.0 * (1.0 - x) for x in ratios]),
           "cpu_ratio_on_off": summary(cpu_ratios),
           "cpu_overhead_pct": summary([100.0 * (x - 1.0) for x in cpu_ratios]),
           "round_overhead_pct": summary([100.0 * (1.0 - x) for x in round_ratios]),
           "round_cpu_overhead_pct": summary([100.0 * (x - 1.0) for x in round_cpu]),
           "first_over_second": summary(first)}
    for side in SIDES:
        ss = [r for r in bs if r["side"] == side]
        out[side] = {f: summary([r.get(f) for r in ss]) for f in (
            "throughput_rps", "cpu_us_per_request", "p50_us", "p99_us", "worker_busy_pct",
            "client_cpu_pct")}
    rs = [r for r in rounds if r["variant"] == variant.key]
    out["other_cpu_pct"] = summary([r.get("other_cpu_pct") for r in rs])
    out["steal_pct"] = summary([r.get("steal_pct") for r in rs])
    return out


# --- output -------------------------------------------------------------------------------


def machine_with_valgrind(build):
    """The machine, and valgrind's version when the instruction count can run."""
    info = machine(build)
    info["valgrind"] = valgrind_version()
    return info


def med(s, fmt=f0):
    return "–" if not s else fmt(s["median"])


def iqr(s, fmt=f2):
    if not s:
        return "–"
    if s["n"] < 4:
        return f"{fmt(s['median'])} (min–max {fmt(s['min'])} … {fmt(s['max'])})"
    return (f"{fmt(s['median'])} (IQR {fmt(s['q1'])} … {fmt(s['q3'])}; "
            f"min–max {fmt(s['min'])} … {fmt(s['max'])})")


def verdict_of(head):
    s = head["overhead_pct"]
    if not s:
        return None, "NO DATA"
    return s["median"], "PASS" if s["median"] < TARGET_PCT else "FAIL"


def capacity(cpu_overhead_pct):
    """CPU per request on/off - 1 (in %) as the throughput a saturated worker loses (in %)."""
    return 100.0 * (1.0 - 1.0 / (1.0 + cpu_overhead_pct / 100.0))


def write_markdown(ctx, path, data):
    m, p = data["machine"], data["parameters"]
    v0 = ctx.variants[0]
    alternating = [v for v in ctx.variants if not v.together]
    together = [v for v in ctx.variants if v.together]
    head = data["summary"][v0.key]
    pct, verdict = verdict_of(head)
    lines = []
    add = lines.append
    add(f"# {ctx.feature.heading}")
    add("")
    add(f"Generated by `{data['command']}` on {m['date']} in {data['elapsed_s']:.0f} s, commit "
        f"`{m['commit'][:12]}`; every burst in `{ctx.feature.stem}.json`."
        + (" **Quick smoke run: few requests, few pairs: not for conclusions.**"
           if ctx.quick else ""))
    add("")
    add(f"**overhead = 1 - on/off throughput: {f2(pct)}% (target < {TARGET_PCT:g}%): "
        f"{verdict}**")
    add("")
    ho, hr = head["overhead_pct"], head["round_overhead_pct"]
    add(f"Framed keep-alive, one worker pinned to vCPU 1, the client on vCPU 0: median of "
        f"{head['pairs_used']} pairs of bursts"
        + (f" (IQR {f2(ho['q1'])} … {f2(ho['q3'])}%, min–max {f2(ho['min'])} … "
           f"{f2(ho['max'])}%)" if ho and ho["n"] >= 4 else "")
        + (f"; per round of fresh servers ({hr['n']} rounds): median {f2(hr['median'])}%, "
           f"min–max {f2(hr['min'])} … {f2(hr['max'])}%" if hr else "")
        + ". Negative: the on side was faster.")
    if ho and ho.get("ci95"):
        add("")
        add(f"95% confidence interval of that median: {f2(ho['ci95'][0])} … "
            f"{f2(ho['ci95'][1])}%.")
    sb = data["summary"].get("framed-together")
    if sb and sb["cpu_overhead_pct"]:
        c = sb["cpu_overhead_pct"]
        add("")
        add(f"Side by side (both servers sharing vCPU 1 at the same time, so the host's noise "
            f"hits both alike): server CPU per request on/off - 1 = **{f2(c['median'])}%** over "
            f"{c['n']} pairs"
            + (f" (IQR {f2(c['q1'])} … {f2(c['q3'])}%" if c["n"] >= 4 else "")
            + (f", 95% CI of the median {f2(c['ci95'][0])} … {f2(c['ci95'][1])}%)"
               if c.get("ci95") else (")" if c["n"] >= 4 else ""))
            + f": a saturated worker would lose 1 - off/on = **{capacity(c['median']):.2f}%** "
              f"of its throughput.")
    su = data["summary"].get("udp-together")
    if su and su["cpu_overhead_pct"]:
        c = su["cpu_overhead_pct"]
        add("")
        add(f"UDP, whose requests cost the worker less (the same scoreboard work is a larger "
            f"share), side by side: on/off - 1 = **{f2(c['median'])}%**"
            + (f" (95% CI of the median {f2(c['ci95'][0])} … {f2(c['ci95'][1])}%)"
               if c.get("ci95") else "")
            + f", capacity overhead {capacity(c['median']):.2f}%.")
    co = head["cpu_overhead_pct"]
    if co:
        add("")
        add(f"Server CPU per request, same pairs: on/off - 1 = **{f2(co['median'])}%**"
            + (f" (IQR {f2(co['q1'])} … {f2(co['q3'])}%)" if co["n"] >= 4 else "")
            + f"; the worker was busy {med(head['on']['worker_busy_pct'])}% (on) and "
              f"{med(head['off']['worker_busy_pct'])}% (off) of its vCPU.")
    cg = data["callgrind"]
    if cg and cg.get("by_config"):
        add("")
        add("Instructions (callgrind, user space): " + "; ".join(
            f"{c}: {v['ir_per_request_on']:,.0f} per request on vs "
            f"{v['ir_per_request_off']:,.0f} off, +{v['difference']:,.0f}"
            for c, v in cg["by_config"].items() if v) + ".")
    add("")
    add("## Machine and conditions")
    add("")
    cpus, unit = cpus_text(m), cpu_word(m)
    add(f"- {cpus}, {m['cpu']}, {m['memory_gib']} GiB RAM, Linux {m['kernel']}, "
        f"{m['os']}; built {m['build_type']}"
        + (f"; {m['valgrind']}" if m["valgrind"] else "; valgrind not installed") + ".")
    la, oc, st = data["load"], data["other_cpu_pct"], data["steal_pct"]
    add(f"- Load average (1 min): {la['before'][0]:.2f} before the run, "
        + (f"{la['during']['median']:.2f} median and {la['during']['max']:.2f} max at the start "
           f"of each round, " if la["during"] else "")
        + f"{la['after'][0]:.2f} after. **This benchmark itself keeps about 2 processes "
        f"runnable** (the client and the worker), so a load near 2 during the run is its own. "
        f"CPU used during the bursts by anything but the workers and the clients (other users "
        f"of the machine, kernel threads, this script), from /proc/stat, per round: "
        + (f"median {f1(oc['median'])}%, max {f1(oc['max'])}% of the {cpus}"
           if oc else "–")
        + (f"; stolen by the hypervisor: median {f1(st['median'])}%, max {f1(st['max'])}%."
           if st else "."))
    add(f"- **{cpus}**{virtual_text(m)}, **and the load generator (`prefork-bench`) shares "
        "them with the server.** "
        f"Pinned: the server on {unit} 1 (`taskset -c 1`), the client on {unit} 0 (`taskset -c "
        "0`); unpinned: where the scheduler puts them. On a shared VM the speed of a vCPU "
        "can drift by 10–30% over a few seconds (whole runs of one side differed that much on "
        "the 2-vCPU VMs this benchmark was developed on), so the two sides are compared in "
        "short alternating bursts, never in separate long runs.")
    add("")
    add("## Method")
    add("")
    add(f"- {ctx.feature.on_text} {ctx.feature.off_text}")
    add(f"- A **round** starts a fresh pair of servers, one on and one off (port 0, read from "
        f"the `listening` line; the worker `ready` in the scoreboard), gives each a warm-up "
        f"burst (not recorded), then alternates **bursts** between them, on off off on on off "
        f"…, so each burst has a partner on the other side a fraction of a second away; the "
        f"next round starts with the other side. A burst is one prefork-bench run of a fixed "
        f"number of requests over keep-alive connections opened before its clock starts. After "
        + ("the round the off server's scoreboard must show 0 requests and 0 bytes, and the "
           "on server's every request the client saw." if not ctx.feature.counts_off else
           "the round each server's scoreboard must show every request the client saw."))
    add("- Per burst: throughput and p50/p99 latency from prefork-bench `--json`; the worker's "
        "CPU time (`/proc/PID/schedstat`, ns; `utime + stime` ticks are in the JSON too) over "
        "the burst divided by the requests answered: server CPU per request (it includes "
        "accepting the connections, a negligible share). Worker busy = that CPU time over the "
        "measured time (a little over 100% is possible: the CPU time also covers accepting "
        "the connections, before prefork-bench's clock starts): near 100% the worker is the "
        "bottleneck and throughput measures its cost directly.")
    add("- Ratios are per pair of bursts (on ÷ its off partner); the verdict is their median. "
        "A round's ratio pools its bursts (requests ÷ measured time per side); it shows how "
        "much a fresh pair of processes differs from another.")
    add("")
    add("```sh")
    on, off = (" ".join(ctx.feature.flags[x]) or "(defaults)" for x in SIDES)
    add(f"taskset -c 1 bench_server --framed 127.0.0.1:0 --workers 1 {on}|{off} "
        f"--stats {PREFIX}N --graceful-timeout 5")
    add(f"taskset -c 0 prefork-bench --target framed --address 127.0.0.1:PORT --connections "
        f"{v0.connections} --threads 1 --requests {v0.requests} --duration {ctx.cap_s} "
        "--json --quiet")
    add("```")
    add("")
    add("## Results")
    add("")
    add("| workload | rounds × bursts × requests | side | throughput req/s | server CPU "
        "µs/request | worker busy % | client CPU % | p50 µs | p99 µs |")
    add("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for v in alternating:
        s = data["summary"][v.key]
        for side in SIDES:
            t = s[side]
            add(f"| {v.title} | {v.rounds} × {v.bursts} × {v.requests} | {side} | "
                f"{med(t['throughput_rps'])} | {med(t['cpu_us_per_request'], f3)} | "
                f"{med(t['worker_busy_pct'])} | {med(t['client_cpu_pct'])} | "
                f"{med(t['p50_us'], f1)} | {med(t['p99_us'], f1)} |")
    add("")
    add("Medians over the bursts of each side. Workloads: "
        + "; ".join(f"**{v.title}**: {v.connections} "
                    + ("connections at a time, a new connection per request"
                       if v.new_connection else
                       ("UDP sockets" if v.target == "udp" else "keep-alive connections"))
                    + (", server on vCPU 1 and client on vCPU 0" if v.pinned else
                       ", server and client (--threads 1) unpinned")
                    for v in alternating)
        + ". 64-byte requests, echoed.")
    add("")
    add("Ratios, median (IQR; min–max); overhead = 1 - on/off throughput, CPU overhead = on/off "
        "CPU per request - 1, both in %:")
    add("")
    add("| workload | pairs | overhead % (pairs) | CPU overhead % (pairs) | overhead % (rounds) "
        "| CPU overhead % (rounds) | first of a pair ÷ second |")
    add("|---|---:|---|---|---|---|---:|")
    for v in alternating:
        s = data["summary"][v.key]
        add(f"| {v.title} | {s['pairs_used']}/{s['pairs']} | {iqr(s['overhead_pct'])} | "
            f"{iqr(s['cpu_overhead_pct'])} | {iqr(s['round_overhead_pct'])} | "
            f"{iqr(s['round_cpu_overhead_pct'])} | {med(s['first_over_second'], f3)} |")
    add("")
    add("\"First of a pair ÷ second\" near 1 says the order within a pair does not matter; "
        "the alternation cancels it anyway.")
    add("")
    # --- side by side
    if together:
        add("## Side by side: CPU per request under the same noise")
        add("")
        add("Both servers of a round (on and off) pinned to vCPU 1 and both clients to vCPU 0, "
            "each burst loading the two at the same time (clients started in alternating "
            "order). The scheduler time-slices the two workers on the one vCPU every few ms, "
            "so whatever the host does to that vCPU (other guests, frequency, its hyperthread "
            "sibling) hits both alike, and the ratio of their CPU per request is far steadier "
            "than between bursts run one after the other. Throughput is not compared here (the "
            "two share the vCPUs and the clients set each other's pace); each worker's CPU time "
            "per request is. Capacity overhead = 1 - off/on CPU per request: the throughput a "
            "saturated worker loses.")
        add("")
        add("| workload | rounds × bursts × requests | CPU µs/request on | off | CPU overhead % "
            "(pairs) | 95% CI of the median | CPU overhead % (rounds) | capacity overhead % |")
        add("|---|---|---:|---:|---|---|---|---:|")
        for v in together:
            s = data["summary"][v.key]
            co = s["cpu_overhead_pct"]
            add(f"| {v.title} | {v.rounds} × {v.bursts} × {v.requests} | "
                f"{med(s['on']['cpu_us_per_request'], f3)} | "
                f"{med(s['off']['cpu_us_per_request'], f3)} | {iqr(co)} | "
                + (f"{f2(co['ci95'][0])} … {f2(co['ci95'][1])}" if co and co.get("ci95")
                   else "–")
                + f" | {iqr(s['round_cpu_overhead_pct'])} | "
                + (f"{capacity(co['median']):.2f}" if co else "–") + " |")
        add("")
    # --- callgrind
    add("## Instructions per request (callgrind)")
    add("")
    if not cg:
        add(f"*Skipped: {data['callgrind_skipped']}.*")
    else:
        add(f"The server under `valgrind --tool=callgrind` (one worker, unpinned), "
            f"{p['cg_small']} and then {p['cg_big']} requests per side; the worker's "
            f"instructions per request are the difference of its two totals over the difference "
            f"of the requests, so start-up, connection set-up and shutdown cancel out. Over 16 "
            f"connections one `epoll_wait` may return several requests; over 1 connection every "
            f"request has its own. Instruction counts do not depend on what else the machine "
            f"is doing: repeated, they agree to within a few instructions per request. "
            f"Callgrind counts **user-space instructions only**: the kernel's work in the "
            f"system calls (most of a request's cost here: `epoll_wait`, a read and a write on "
            f"loopback) is not in them, so the percentage is of a small part of the real cost; "
            f"the absolute difference is {ctx.feature.whose} own code.")
        add("")
        add("| workload | Ir/request on | Ir/request off | difference | on/off - 1 |")
        add("|---|---:|---:|---:|---:|")
        for c, v in cg["by_config"].items():
            if v:
                add(f"| {c} | {v['ir_per_request_on']:,.1f} | {v['ir_per_request_off']:,.1f} | "
                    f"+{v['difference']:,.1f} | {v['overhead_pct']:+.2f}% |")
            else:
                add(f"| {c} | – | – | – | – |")
        add("")
        add("Clock reads: " + (
            "valgrind ran the vDSO's `clock_gettime`, so they are counted." if cg.get("vdso") else
            f"under valgrind glibc's `clock_gettime` finds no vDSO and makes a system call, so "
            f"only its user-space wrapper is counted; natively (clocksource "
            f"`{cg.get('clocksource')}`"
            + (", read through the vDSO" if cg.get("clocksource") in ("tsc", "kvm-clock") else "")
            + ") the two reads per request stay in user space. The native CPU per request "
              "above includes them."))
        add("")
        fn = cg.get("functions_on_big")
        if fn:
            n = p["cg_big"]
            add(f"Where the on side's extra instructions go: Ir of {ctx.feature.whose} "
                f"functions in "
                f"the on run of {n} requests, divided by {n} (callgrind_annotate, inclusive: a "
                f"caller's figure includes its callees'; functions inlined into their callers do "
                f"not appear; the off side calls the same functions, which return at once):")
            add("")
            add("| function | Ir per request |")
            add("|---|---:|")
            for name, ir in sorted(fn.items(), key=lambda kv: -kv[1])[:10]:
                add(f"| `{name[:110]}` | {ir / n:,.1f} |")
            add("")
        add("Runs: " + "; ".join(
            f"{r['side']} {r['target']} C={r['connections']} {r.get('requests', '–')} requests: "
            f"{f0(r.get('worker_ir'))} Ir" for r in cg["runs"]) + ".")
    add("")
    # --- reading
    add("## Reading it")
    add("")
    add(reading(ctx, data))
    add("")
    add("## Problems seen")
    add("")
    if ctx.problems:
        add("Rounds with errors, lost requests, bad exit statuses, restarts or wrong counters "
            f"(kept in `{ctx.feature.stem}.json`; a round with such a problem is left out of "
            "the ratios):")
        add("")
        for prob in ctx.problems:
            add(f"- {prob}")
    else:
        add("None: every burst answered every request without a client error, "
            + ("every server counted every request" if ctx.feature.counts_off else
               "every off server left the counters at 0, every on server counted every request")
            + ", no worker restarted, and every server exited 0 on SIGTERM.")
    add("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def reading(ctx, data):
    head = data["summary"][ctx.variants[0].key]
    out = []
    on, off = head["on"], head["off"]
    busy = on["worker_busy_pct"]["median"] if on["worker_busy_pct"] else None
    cpu_o = head["cpu_overhead_pct"]
    if busy is not None:
        bound = ("the worker is the bottleneck (busy ≥ 90%), so the throughput ratio measures "
                 "its cost" if busy >= 90 else
                 "the worker is not saturated (busy < 90%): the client and the wake-ups "
                 "between the two vCPUs set part of the pace, so the throughput ratio "
                 "understates the cost and the CPU per request is the fairer figure")
        out.append(f"- Framed keep-alive, pinned: the worker was {busy:.0f}% busy: {bound}. Its "
                   f"CPU per request: {med(on['cpu_us_per_request'], f3)} µs on vs "
                   f"{med(off['cpu_us_per_request'], f3)} µs off (medians of the bursts); "
                   f"per-pair CPU overhead {iqr(cpu_o)}%.")
    for key in ("framed-together", "udp-together"):
        sb = data["summary"].get(key)
        if not sb or not sb["cpu_overhead_pct"]:
            continue
        c = sb["cpu_overhead_pct"]
        on_us, off_us = sb["on"]["cpu_us_per_request"], sb["off"]["cpu_us_per_request"]
        diff = 10.0 * c["median"] * off_us["median"] if off_us else None  # ns
        out.append(f"- Side by side, {key.split('-')[0].replace('udp', 'UDP')}: CPU per request "
                   f"{med(on_us, f3)} µs on vs {med(off_us, f3)} µs off (medians), per-pair "
                   f"overhead {iqr(c)}%"
                   + (f", 95% CI of the median {f2(c['ci95'][0])} … {f2(c['ci95'][1])}%"
                      if c.get("ci95") else "")
                   + (f"; that is about {diff:.0f} ns per request" if diff is not None else "")
                   + ("." if key == "framed-together" else
                      ". The cheaper the request, the larger the share the same fixed cost "
                      "takes."))
    cg = data["callgrind"]
    base = off["cpu_us_per_request"]["median"] if off["cpu_us_per_request"] else None
    if cg:
        diffs = {c: v["difference"] for c, v in cg["by_config"].items() if v}
        measured = []
        for key, name in (("framed-together", "framed"), ("udp-together", "UDP")):
            sb = data["summary"].get(key)
            if sb and sb["cpu_overhead_pct"] and sb["off"]["cpu_us_per_request"]:
                ns = 10.0 * sb["cpu_overhead_pct"]["median"] * \
                    sb["off"]["cpu_us_per_request"]["median"]
                measured.append(f"about {ns:.0f} ns ({name})")
        if diffs:
            out.append(
                f"- Callgrind: {ctx.feature.what} "
                + ", ".join(f"{v:,.0f} ({c})" for c, v in diffs.items())
                + " user-space instructions per request"
                + (": the same whatever the protocol and the batching, so a fixed cost per "
                   "request, which weighs more the cheaper the request"
                   if len(diffs) > 1 and max(diffs.values()) - min(diffs.values()) < 5 else "")
                + ("" if cg.get("vdso") or ctx.feature.key != "stats" else
                   "; plus the two clock reads, whose time callgrind does not see here")
                + (". Measured side by side, that fixed cost comes to " + " and ".join(measured)
                   + " per request." if measured else "."))
    out.append("- Spread: single bursts move by a few percent either way (the IQR), whole "
               "runs by far more; the verdict is the median of many pairs, and the "
               "instruction count, which does not move, says the same thing independently.")
    return "\n".join(out)


# --- main ---------------------------------------------------------------------------------


class Ctx:
    pass


def main():
    parser = argparse.ArgumentParser(
        prog="bench/overhead",
        description="Measures what updating the scoreboard costs: bench_server with "
                    "--worker-stats on vs off, alternating bursts against fresh pairs of "
                    "servers, pinned and not; instructions per request with callgrind when "
                    "valgrind is installed; writes overhead.md and overhead.json.")
    add_run_arguments(parser, "a smoke run: few rounds, few requests (about 10 s); never writes "
                      "bench/results/")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds (fresh server pairs) for framed keep-alive pinned "
                             "(default 20; --quick 2)")
    parser.add_argument("--no-callgrind", action="store_true",
                        help="skip the instruction count even if valgrind is installed")
    parser.add_argument("--compare", choices=sorted(FEATURES), default="stats",
                        help="stats: --worker-stats on vs off (overhead.md, the default); "
                             "timeouts: the default connection timeouts vs all three 0, TCP "
                             "workloads only (overhead-timeouts.md)")
    args = parser.parse_args()
    feature = FEATURES[args.compare]

    if args.rounds is not None and not 1 <= args.rounds <= 100:
        parser.error("--rounds wants 1 to 100")
    build = os.path.abspath(args.build)
    bins, out = bins_and_out(parser, args, feature.stem)
    if not shutil.which("taskset"):
        parser.error("taskset (util-linux) is missing: the runs pin server and client")
    if not {0, 1} <= os.sched_getaffinity(0):
        parser.error("needs vCPUs 0 and 1 (the server is pinned to 1, the client to 0)")

    q = args.quick
    ctx = Ctx()
    ctx.bins, ctx.quick, ctx.problems, ctx.feature = bins, q, [], feature
    ctx.nproc = len(os.sched_getaffinity(0))
    ctx.logdir = tempfile.mkdtemp(prefix="overhead-logs.")
    ctx.cap_s = 30
    ctx.variants = [
        # rounds × bursts × requests per burst; the first is the one the verdict is on
        Variant("framed-pinned", "framed keep-alive, pinned", "framed", 16,
                1000 if q else 20000, args.rounds or (2 if q else 20), 2 if q else 10),
        Variant("framed-unpinned", "framed keep-alive, unpinned", "framed", 16,
                1000 if q else 20000, 1 if q else 6, 2 if q else 6, pinned=False),
        Variant("udp-pinned", "UDP, pinned", "udp", 16, 1000 if q else 20000, 1 if q else 6,
                2 if q else 6),
        # TIME_WAIT: at most (rounds × bursts + 2) × requests sockets, 52,000 here
        Variant("newconn-pinned", "framed, a connection per request, pinned", "framed", 8,
                100 if q else 1000, 1 if q else 5, 2 if q else 10, new_connection=True),
        # side by side: the same host noise on both sides at once, for CPU per request
        Variant("framed-together", "framed keep-alive, side by side", "framed", 16,
                1000 if q else 20000, 1 if q else 8, 2 if q else 10, together=True),
        Variant("udp-together", "UDP, side by side", "udp", 16, 1000 if q else 20000,
                1 if q else 6, 2 if q else 10, together=True),
    ]
    ctx.cg_small, ctx.cg_big = (200, 1200) if q else (2000, 22000)
    ctx.cg_configs = [("framed", 16)] if q else [("framed", 16), ("framed", 1), ("udp", 16)]
    if feature.key == "timeouts":  # UDP has no connection to time out
        ctx.variants = [v for v in ctx.variants if v.target != "udp"]
        ctx.cg_configs = [c for c in ctx.cg_configs if c[0] != "udp"]

    stop_all_at_exit(PREFIX)

    command = "bench/overhead" + (" --quick" if q else "") + (
        f" --compare {feature.key}" if feature.key != "stats" else "") + (
        f" --rounds {args.rounds}" if args.rounds else "") + (
        " --no-callgrind" if args.no_callgrind else "") + (f" --out {args.out}" if args.out else "")
    mach = machine_with_valgrind(build)
    say(f"{cpus_text(mach)}, load average {mach['load_average_before']}; writing to {out}")
    started = time.monotonic()
    rounds, bursts = [], []
    callgrind, skipped = None, None
    try:
        for v in ctx.variants:
            for rd in range(1, v.rounds + 1):
                rnd, bs = run_round(ctx, v, rd)
                rounds.append(rnd)
                bursts.extend(bs)

                def tp(side):
                    return summary([r.get("throughput_rps") for r in bs if r["side"] == side])

                def cpu(side):
                    return summary([r.get("cpu_us_per_request") for r in bs if r["side"] == side])

                say(f"{v.key} round {rd}/{v.rounds}: on {med(tp('on'))} req/s "
                    f"{med(cpu('on'), f3)} µs/req, off {med(tp('off'))} req/s "
                    f"{med(cpu('off'), f3)} µs/req; load {rnd['load_1m_before']:.2f}, other "
                    f"CPU {f1(rnd.get('other_cpu_pct'))}%")
        if args.no_callgrind:
            skipped = "--no-callgrind was given"
        elif not shutil.which("valgrind"):
            skipped = ("valgrind is not installed (Debian: apt-get install -y valgrind); the "
                       "throughput and CPU figures above stand alone")
        else:
            callgrind = callgrind_phase(ctx)
    finally:
        stop_all(PREFIX)
        shutil.rmtree(ctx.logdir, ignore_errors=True)
    if skipped:
        say("callgrind skipped: " + skipped)

    summaries = {v.key: summarize(v, rounds, bursts) for v in ctx.variants}
    pct, verdict = verdict_of(summaries[ctx.variants[0].key])
    elapsed = time.monotonic() - started
    data = {
        "command": command,
        "machine": mach,
        "elapsed_s": round(elapsed, 1),
        "parameters": {"variants": [vars(v) for v in ctx.variants], "cap_s": ctx.cap_s,
                       "cg_small": ctx.cg_small, "cg_big": ctx.cg_big,
                       "cg_configs": ctx.cg_configs, "quick": q,
                       "target_pct": TARGET_PCT},
        "load": {"before": mach["load_average_before"], "after": loadavg(),
                 "during": summary([r.get("load_1m_before") for r in rounds])},
        "other_cpu_pct": summary([r.get("other_cpu_pct") for r in rounds]),
        "steal_pct": summary([r.get("steal_pct") for r in rounds]),
        "overhead_pct": pct,
        "verdict": verdict,
        "summary": summaries,
        "rounds": rounds,
        "bursts": bursts,
        "callgrind": callgrind,
        "callgrind_skipped": skipped,
        "problems": ctx.problems,
    }

    def clean(v):  # JSON has no infinity; 4 decimals are plenty; no empty error maps
        if isinstance(v, float):
            return "inf" if v == float("inf") else round(v, 4)
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items() if not (k == "error_kinds" and not x)}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    with open(os.path.join(out, feature.stem + ".json"), "w") as f:
        json.dump(clean(data), f, indent=1)
        f.write("\n")
    write_markdown(ctx, os.path.join(out, feature.stem + ".md"), data)
    say(f"done in {elapsed:.0f} s: {os.path.join(out, feature.stem + '.md')}")
    say(f"overhead = 1 - on/off throughput: {f2(pct)}% (target < {TARGET_PCT:g}%): {verdict}")
    if ctx.problems:
        say(f"{len(ctx.problems)} problem(s) seen: see 'Problems seen' in {feature.stem}.md")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
