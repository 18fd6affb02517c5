"""bench/models --lesson: serial, concurrent and parallel in one small table, in
under a minute, for the teaching guide (docs/guide/, chapter 1).

Three designs (one process serving one request at a time; one process with 8
threads; 8 processes) with a handler that waits (I/O-bound) or computes
(CPU-bound), the server on one core and on two: requests per second and the
server's CPU in cores. Prints the table, three sentences reading it and the
machine to stdout; writes nothing unless given --out DIR (then
models-lesson.txt and models-lesson.json there).

The output's lines and columns are the same every run, only the numbers vary:
a doc test compares its shape. bench/results/models.md, "Serial, concurrent,
parallel", is the full measurement (repetitions, min–max, latencies)."""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from benchlib import (PROGRAMS, Server, command_text, cpus_text, machine, model_facts,
                      run_client, say, stop_all, stop_all_at_exit, virtual_text)

PREFIX = f"prefork_models_{os.getpid()}_"  # as bench/models: the smoke test looks for these
US = 2000  # the handler's time per request: a serial server's ceiling is 1e6 / US req/s
CONNECTIONS = 8
REQUESTS, QUICK_REQUESTS = 300, 20
REPS = 3  # interleaved repetitions per cell, the median shown
REPLY_SIZE = 4000  # as bench/models (Stevens' client)


class Design:
    def __init__(self, model, shape, args, workers=1):
        self.name, self.shape, self.workers = model, shape, workers
        self.args = ["--model", model, "--workers", str(workers), *args]
        self.label = f"{model} ({shape})"

    def slots(self, facts):
        """Worker slots the scoreboard shows when it is ready: its processes for a pool of
        them, else 1 (from the code's table of models, as bench/models reads it)."""
        return self.workers if facts[self.name]["pool"] else 1


# As many threads as processes: they differ in kind only.
DESIGNS = [
    Design("iterative", "1 process, serial", []),
    Design("prethreaded", "1 process × 8 threads", ["--accept", "lock", "--threads", "8"]),
    Design("prefork", "8 processes", ["--accept", "lock"], workers=8),
]
HANDLERS = [("I/O-bound", "--io-wait-us"), ("CPU-bound", "--cpu-us")]
CORES = [1, 2]


def placement(cores):
    """(the server's CPUs, the client's or None for anywhere) for `cores` server cores, or
    None when this machine has fewer. The client gets the CPUs the server does not, if any."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < cores:
        return None
    rest = cpus[cores:]
    return ",".join(map(str, cpus[:cores])), (",".join(map(str, rest)) if rest else None)


def one_cell(bins, logdir, facts, design, flag, where, requests, problems):
    """One run: the server pinned by `where`, loaded, stopped. (req/s, cores) or Nones."""
    server_cpus, client_cpus = where
    server = Server(bins, logdir, PREFIX, f"{design.name} {flag} {server_cpus}", "--framed",
                    [*design.args, flag, str(US)], design.slots(facts), pin=server_cpus)
    cap_s = 60
    cmd = ([] if client_cpus is None else ["taskset", "-c", client_cpus]) + [
        os.path.join(bins, "prefork-bench"), "--target", "framed", "--address", "",
        "--connections", str(CONNECTIONS), "--requests", str(requests), "--new-connection",
        "--reply-size", str(REPLY_SIZE), "--duration", str(cap_s), "--json", "--quiet"]
    data, problem, cpu, wall = None, None, None, None
    try:
        server.start()
        cmd[cmd.index("--address") + 1] = f"127.0.0.1:{server.port}"
        pids = [server.proc.pid, *server.worker_pids]
        before, wall = cpu_ns(pids), time.monotonic()
        data, problem = run_client(cmd, cap_s)
        after, wall = cpu_ns(pids), time.monotonic() - wall
        cpu = (after - before) / 1e9 if before is not None and after is not None else None
    except RuntimeError as e:
        problem = str(e)
    finally:
        status = server.stop()
    odd = [problem] if problem else []
    if status != 0:
        odd.append(f"server exit status {status}")
    if server.leak():
        odd.append(server.leak())
    if data and (data["errors"]["total"] or data["requests"] != requests):
        odd.append(f"{data['requests']} of {requests} answered, "
                   f"{data['errors']['total']} errors")
    record = {"design": design.name, "handler": flag, "server_cpus": server_cpus,
              "client_cpus": client_cpus, "server_cmd": command_text(server.cmd),
              "client_cmd": command_text(cmd), "server_exit": status}
    if odd:
        problems.append(f"{design.name} {flag} {US} on CPUs {server_cpus}: " + "; ".join(odd)
                        + server.log_tail())
        return record
    # Over the client's measured time: the window read around it also holds the client's
    # start, when the server is idle.
    duration = data["duration_s"]
    record.update(throughput_rps=data["throughput_rps"], duration_s=duration, wall_s=wall,
                  server_cpu_s=cpu, cores=cpu / duration if cpu is not None and duration else None)
    return record


def cpu_ns(pids):
    """CPU time (ns) of every thread of `pids` so far, from /proc/PID/task/*/schedstat: the
    scheduler's own clock, exact over a run of a fraction of a second (the server's rusage
    would also count its start and stop, and comes in 10 ms ticks). None if one is gone."""
    total = 0
    try:
        for pid in pids:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def median(records, field):
    values = [r[field] for r in records if r.get(field) is not None]
    return statistics.median(values) if values else None


def rps(v):
    return "–" if v is None else f"{v:.0f}"


def cores(v):
    return "–" if v is None else f"{v:.2f}"


def ratio(a, b):
    return f"{a / b:.1f}×" if a and b else "–"


def table(cells, where):
    """The table: one row per design and handler, a pair of columns per core count."""
    rows = [("design", "handler", "one core", "", "two cores", ""),
            ("", "", "req/s", "server CPU", "req/s", "server CPU")]
    for kind, flag in HANDLERS:
        for d in DESIGNS:
            row = [d.label, kind]
            for n in CORES:
                s = cells.get((d.name, flag, n))
                row += ([rps(s["rps"]), cores(s["cores"]) + " cores"] if where[n] else
                        ["skipped", ""])
            rows.append(tuple(row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4, 5}
    lines = []
    for r in rows:
        parts = [c.rjust(widths[i]) if i in right and r is not rows[0] else c.ljust(widths[i])
                 for i, c in enumerate(r)]
        lines.append("  ".join(parts).rstrip())
    return lines


def sentences(cells, where, cpus):
    """Three sentences reading the table; the same words every run, only numbers vary."""
    def cell(name, kind, n):
        return cells.get((name, dict(HANDLERS)[kind], n)) or {"rps": None, "cores": None}

    def times(name, kind, n):  # the rate as a multiple of the serial server's
        return ratio(cell(name, kind, n)["rps"], cell("iterative", kind, n)["rps"])

    def per_cpu_second(name):  # requests per second of server CPU, CPU-bound, one core
        s = cell(name, "CPU-bound", 1)
        return rps(s["rps"] / s["cores"] if s["rps"] and s["cores"] else None)

    cap = 1e6 / US
    serial = (f"Serial: the iterative server takes one request at a time, so with a {US} µs "
              f"handler it cannot pass {cap:.0f} req/s, whatever the handler does: "
              f"{rps(cell('iterative', 'I/O-bound', 1)['rps'])} req/s I/O-bound, "
              f"{rps(cell('iterative', 'CPU-bound', 1)['rps'])} CPU-bound, on one core.")
    concurrent = (
        f"Concurrent: I/O-bound on one core, 8 threads serve "
        f"{times('prethreaded', 'I/O-bound', 1)} and 8 processes "
        f"{times('prefork', 'I/O-bound', 1)} the serial rate, using "
        f"{cores(cell('prethreaded', 'I/O-bound', 1)['cores'])} and "
        f"{cores(cell('prefork', 'I/O-bound', 1)['cores'])} of the core: while one request "
        f"waits, the CPU runs another (multiprogramming).")
    parallel = (
        f"Parallel: a CPU-bound request needs {US} µs of CPU, so a core serves at most "
        f"{cap:.0f} a second however they take turns: per second of server CPU, on one core, "
        f"the three designs served {per_cpu_second('iterative')}, "
        f"{per_cpu_second('prethreaded')} and {per_cpu_second('prefork')} requests. ")
    if where[2]:
        parallel += (
            f"Only more cores serve more: on two cores 8 threads give "
            f"{times('prethreaded', 'CPU-bound', 2)} and 8 processes "
            f"{times('prefork', 'CPU-bound', 2)} the serial rate, using "
            f"{cores(cell('prethreaded', 'CPU-bound', 2)['cores'])} and "
            f"{cores(cell('prefork', 'CPU-bound', 2)['cores'])} cores.")
    else:
        parallel += f"Two cores: skipped, this machine has {cpus}."
    return [serial, concurrent, parallel]


def run(parser, args):
    """bench/models --lesson [--quick] [--build DIR] [--out DIR]: prints the lesson's table."""
    bins = os.path.join(os.path.abspath(args.build), "bin")
    for prog in PROGRAMS:
        if not os.access(os.path.join(bins, prog), os.X_OK):
            parser.error(f"{os.path.join(bins, prog)} is missing: build first")
    if not shutil.which("taskset"):
        parser.error("taskset (util-linux) is missing: the lesson pins the server to cores")
    facts = model_facts(bins)
    for d in DESIGNS:
        if d.name not in facts:
            raise SystemExit(f"bench/models: the code has no model {d.name}")
    requests = QUICK_REQUESTS if args.quick else REQUESTS
    reps = 1 if args.quick else REPS
    mach = machine(args.build)
    cpus = cpus_text(mach)
    where = {n: placement(n) for n in CORES}
    stop_all_at_exit(PREFIX)
    logdir = tempfile.mkdtemp(prefix="models-lesson-logs.")
    started = time.monotonic()
    problems, records = [], []
    combos = [(d, flag, n) for d in DESIGNS for _, flag in HANDLERS for n in CORES if where[n]]
    try:
        for rep in range(reps):
            # Interleaved: a slow moment of the machine spreads over every cell.
            for d, flag, n in combos[rep:] + combos[:rep]:
                failed = []
                r = one_cell(bins, logdir, facts, d, flag, where[n], requests, failed)
                if failed:  # once more: one transient error on a busy machine is not the table's
                    first, failed = failed[0], []
                    r = one_cell(bins, logdir, facts, d, flag, where[n], requests, failed)
                    r["retried_after"] = first
                    problems += failed
                    for problem in failed:
                        say("PROBLEM: " + problem)
                r["cores_given"], r["rep"] = n, rep + 1
                records.append(r)
                if sys.stderr.isatty():  # progress for a person waiting, not for logs
                    say(f"{d.name:12s} {flag:13s} {n} core{'s' if n > 1 else ' '} "
                        f"{rps(r.get('throughput_rps')):>6} req/s  {cores(r.get('cores'))} cores")
    finally:
        stop_all(PREFIX)
        shutil.rmtree(logdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    cells = {}
    for d, flag, n in combos:
        rs = [r for r in records
              if (r["design"], r["handler"], r["cores_given"]) == (d.name, flag, n)]
        cells[(d.name, flag, n)] = {"rps": median(rs, "throughput_rps"),
                                    "cores": median(rs, "cores")}

    one_cpus, one_client = where[1]
    if where[2]:
        two_cpus, two_client = where[2]
        two_text = (f"two cores: the server on CPUs {two_cpus} (taskset -c {two_cpus}), the "
                    + (f"client on CPUs {two_client}." if two_client else
                       "client too (it shares them)."))
    else:
        two_text = f"two cores: skipped, this machine has {cpus}."
    lines = [
        f"Serial, concurrent, parallel: a handler that waits {US} µs (I/O-bound, --io-wait-us "
        f"{US}: the CPU is free meanwhile) or computes {US} µs (CPU-bound, --cpu-us {US}); "
        f"{requests} requests per cell, {CONNECTIONS} connections at a time, median of {reps} "
        f"run{'s' if reps > 1 else ''}.",
        f"One core: the server on CPU {one_cpus} (taskset -c {one_cpus}), the client "
        + (f"on CPU {one_client}; " if one_client else "on the same CPU; ") + two_text,
        "",
        *table(cells, where),
        "",
        *(f"- {s}" for s in sentences(cells, where, cpus)),
        "",
        f"Machine: {cpus}{virtual_text(mach)}, {mach['cpu']}, Linux {mach['kernel']}, "
        f"{mach['build_type']} build, load average {mach['load_average_before'][0]} before; "
        f"measured in {elapsed:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        out = os.path.abspath(args.out)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "models-lesson.txt"), "w") as f:
            f.write(text)
        with open(os.path.join(out, "models-lesson.json"), "w") as f:
            json.dump({"machine": mach, "elapsed_s": round(elapsed, 1), "us": US,
                       "requests": requests, "connections": CONNECTIONS, "reps": reps,
                       "cells": [{"design": k[0], "handler": k[1], "cores": k[2], **v}
                                 for k, v in cells.items()],
                       "runs": records, "problems": problems}, f, indent=1)
            f.write("\n")
    if problems:
        say(f"{len(problems)} problem(s) seen (above); their cells show –")
        return 1
    return 0
