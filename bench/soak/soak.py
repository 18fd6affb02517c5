#!/usr/bin/env python3
"""Soak: one upper_server for about ten minutes under well-behaved load, then
the same load with hostile clients and periodic worker kills, then the load
alone again; RSS and descriptors of the master and every worker sampled
throughout, and the well-behaved clients' success rate and latency per phase.

  alone    prefork-bench, open loop (--rate), framed keep-alive, --check upper
  hostile  the same, plus clients of every kind in hostile.py (idle, trickle,
           never_read, oversized, garbage, reset), each reconnecting when closed,
           and a worker (a pid from the scoreboard, a child of our master) killed
           with SIGKILL every --kill-every seconds
  after    the load alone again: the hostile clients' connections are gone

The load runs in slices (--slice, a new prefork-bench each), so that each phase
has several p99s: the report gives their median and range, and says whether
the hostile phase's median p99 lies within the range of the slices without
hostile clients (the machine's noise, measured in the same run).

One server for all three: the question is whether it drifts as time passes
under abuse, so the phases share its history; "after" brackets "hostile" with a
second baseline, which shows the machine's noise and whether the figures come
back. The server runs with timeouts of 5 s (--idle-timeout, --read-timeout,
--write-timeout), so that each hostile connection is closed and reopened
dozens of times in a run, and --max-message 1 MiB (the default, given so the
oversized client knows it).

"Flat" (series.verdict): over the hostile phase's samples, the last third's
maximum of the largest worker RSS, the master's RSS, all workers' descriptors
and the master's descriptors is within the first third's maximum plus 25% (at
least 4 MiB) for memory, 10% (at least 8) for descriptors (series.TOLERANCE
says why); and the descriptors in "after" are within those of "alone" plus the
same tolerance. A benchmark's verdict, not a test.

  bench/soak/soak.py                           # ~10 min: bench/results/soak.md and .json
  bench/soak/soak.py --quick                   # ~60 s, written to a temporary directory
  bench/soak/soak.py --duration 180 --out /tmp/soak

Exit status: 0 when flat, 1 when not (or a phase failed to run), 2 on a usage
error. Every process it starts is ended by pid, also on failure or Ctrl-C.
Python 3.11 standard library only, and build/bin/{upper_server,prefork-bench}."""

import argparse
import atexit
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(BENCH, "faults"))  # server.py, procfs.py
sys.path.insert(2, BENCH)  # benchlib.py

import benchlib  # noqa: E402
from compare_builds import page_fault_us  # noqa: E402
import hostile  # noqa: E402
import series  # noqa: E402
import server  # noqa: E402

TIMEOUT_S = 5  # the server's idle, read and write timeouts
MAX_MESSAGE = 1 << 20
PHASES = (("alone", 0.25), ("hostile", 0.60), ("after", 0.15))  # share of --duration


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/soak/soak.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(benchlib.ROOT, "build"),
                   help="build directory with bin/upper_server, bin/prefork-bench (default "
                        "build/, a Release build)")
    p.add_argument("--quick", action="store_true",
                   help="about 60 s, fewer clients; never writes bench/results/")
    p.add_argument("--duration", type=float,
                   help="seconds of all three phases (default 600, --quick 60)")
    p.add_argument("--workers", type=int, default=4, help="worker processes (4)")
    p.add_argument("--connections", type=int, default=16,
                   help="well-behaved keep-alive connections (16)")
    p.add_argument("--rate", type=float, default=2000,
                   help="well-behaved requests per second, open loop (2000)")
    p.add_argument("--per-kind", type=int, help="hostile clients of each kind (4, --quick 2)")
    p.add_argument("--kill-every", type=float,
                   help="seconds between worker kills in the hostile phase (30, --quick 8)")
    p.add_argument("--sample-every", type=float,
                   help="seconds between samples (5, --quick 2)")
    p.add_argument("--slice", type=float, dest="slice_s",
                   help="seconds of each prefork-bench run; a phase is several (duration/12, "
                        "at most 30)")
    p.add_argument("--out", help="directory for soak.md and soak.json (bench/results/; with "
                                 "--quick a new temporary directory)")
    a = p.parse_args(argv)
    a.duration = a.duration or (60.0 if a.quick else 600.0)
    a.per_kind = a.per_kind or (2 if a.quick else 4)
    a.kill_every = a.kill_every or (8.0 if a.quick else 30.0)
    a.sample_every = a.sample_every or (2.0 if a.quick else 5.0)
    a.bucket_s = 5.0 if a.duration <= 90 else 30.0
    a.slice_s = a.slice_s or min(30.0, a.duration / 12)
    for flag in ("duration", "workers", "connections", "rate", "per_kind", "kill_every",
                 "sample_every", "slice_s"):
        if getattr(a, flag) <= 0:
            p.error(f"--{flag.replace('_', '-')} must be positive")
    if a.duration < 30 or a.slice_s < 4 or a.slice_s > 600:  # prefork-bench: 600 s at most
        p.error("--duration must be 30 s or more, --slice between 4 and 600 s")
    a.build = os.path.abspath(a.build)
    bins = os.path.join(a.build, "bin")
    a.exe, a.bench, a.top = (os.path.join(bins, n) for n in
                             ("upper_server", "prefork-bench", "prefork-top"))
    for exe in (a.exe, a.bench):
        if not os.access(exe, os.X_OK):
            p.error(f"{exe} is missing: build first (cmake -S {benchlib.ROOT} -B build "
                    "-DCMAKE_BUILD_TYPE=Release && cmake --build build -j2)")
    if not os.access(a.top, os.X_OK):
        a.top = None
    if a.quick:
        a.out = os.path.abspath(a.out) if a.out else tempfile.mkdtemp(prefix="soak-quick.")
        if os.path.realpath(a.out) == os.path.realpath(benchlib.RESULTS):
            p.error("--quick never writes bench/results/: give another --out")
    else:
        a.out = os.path.abspath(a.out) if a.out else benchlib.RESULTS
    return a


def hostile_settings():
    return {"hold_s": 3 * TIMEOUT_S + 5, "pause_s": 0.1, "trickle_s": 1.0,
            "reply_bytes": 256 * 1024, "max_message": MAX_MESSAGE, "max_connections": 100000}


def server_args():
    return ["--idle-timeout", str(TIMEOUT_S), "--read-timeout", str(TIMEOUT_S),
            "--write-timeout", str(TIMEOUT_S), "--max-message", str(MAX_MESSAGE)]


def bench_command(a, port, seconds):
    return [a.bench, "--target", "framed", "--address", f"127.0.0.1:{port}", "--connections",
            str(a.connections), "--threads", "1", "--rate", f"{a.rate:g}", "--warmup", "1",
            "--duration", f"{seconds:g}", "--check", "upper", "--json", "--quiet"]


CLIENTS = set()  # prefork-bench processes running, ended by end_clients() at exit


def end_clients():
    for proc in list(CLIENTS):
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        CLIENTS.discard(proc)


class Soak:
    """The run's state: the server, the samples, the kills, the phases' results."""

    def __init__(self, a, srv):
        self.a, self.srv = a, srv
        self.began = time.monotonic()
        self.samples, self.kills, self.phases, self.hostile = [], [], [], {}
        self.problems = []
        self.next_sample = 0.0
        self.next_kill = None
        self.server_command = ""

    def now(self):
        return time.monotonic() - self.began

    def sample(self, phase):
        board = self.srv.stats() or self.srv.scoreboard()
        self.samples.append(series.take_sample(self.now(), phase, self.srv.proc.pid, board))
        self.next_sample = self.now() + self.a.sample_every

    def kill_one(self):
        """SIGKILL one ready worker of our server (checked to be our master's child)."""
        board = self.srv.stats()
        pids = [w["pid"] for w in (board or {}).get("workers", [])
                if w.get("state") == "ready" and w.get("pid", 0) > 0
                and self.srv.is_worker(w["pid"])]
        if pids and self.srv.signal(random.choice(pids), signal.SIGKILL):
            self.kills.append(round(self.now(), 1))

    def phase(self, name, seconds):
        """One phase: prefork-bench in slices of slice_s (1 s of each a warm-up) until
        `seconds` have passed, the hostile clients and the kills throughout the hostile
        one, a sample every sample_every seconds."""
        a = self.a
        say(f"phase {name}: {seconds:.0f} s")
        began = self.now()
        crowd = None
        if name == "hostile":
            crowd = hostile.Hostiles(self.srv.framed_port, hostile.KINDS, a.per_kind,
                                     seconds, hostile_settings())
            crowd.start()
        # kills fall mid-slice: one during a prefork-bench's warm-up would go uncounted
        self.next_kill = began + a.kill_every + a.slice_s / 2 if crowd else None
        slices = []
        while began + seconds - self.now() >= 3:
            length = min(a.slice_s, began + seconds - self.now())
            slices.append(self.slice(name, length))
        if crowd:
            stuck = crowd.stop()
            self.hostile = crowd.figures()
            if stuck:
                self.problems.append(f"hostile clients still running at the end: {stuck}")
        result = series.phase_summary(name, slices)
        result["seconds"] = round(self.now() - began, 1)
        result["runs"] = slices
        self.phases.append(result)
        say(f"phase {name}: {phase_line(result)}")

    def slice(self, name, seconds):
        """One prefork-bench run of `seconds`, sampling and killing meanwhile; its
        client_phase() figures, or None."""
        began = self.now()
        proc = benchlib.start_client(bench_command(self.a, self.srv.framed_port, seconds - 1))
        CLIENTS.add(proc)
        while proc.poll() is None and self.now() < began + seconds + 30:
            if self.now() >= self.next_sample:
                self.sample(name)
            if self.next_kill is not None and self.now() >= self.next_kill:
                self.kill_one()
                self.next_kill += self.a.kill_every
            time.sleep(min(0.1, max(0.0, self.next_sample - self.now())))
        data, problem = benchlib.finish_client(proc, seconds)
        CLIENTS.discard(proc)
        if problem and not data:
            self.problems.append(f"phase {name}: {problem}")
        got = series.client_phase(data)
        if got:  # when, to set a slice's p99 beside the kills and the samples
            got.update({"from_s": round(began, 1), "to_s": round(self.now(), 1)})
        return got


def phase_line(r):
    return (f"{r['slices']} runs, {r['requests']} answered, {r['errors']} errors "
            f"{r['error_kinds'] or ''}, median p50 {fmt(r['p50_ms'], 3)} ms, median p99 "
            f"{fmt(r['p99_ms'], 3)} ms ({fmt(r['p99_min_ms'], 3)}–{fmt(r['p99_max_ms'], 3)})")


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def say(text):
    print(f"bench/soak: {text}", file=sys.stderr, flush=True)


def run(a, name):
    logdir = tempfile.mkdtemp(prefix="soak.")
    srv = server.ServerProcess(a.exe, name, logdir, a.workers, server_args(), top=a.top)
    machine = benchlib.machine(a.build)
    machine["page_fault_us_before"] = page_fault_us()
    srv.start()
    srv.wait_ready()
    say(f"{a.exe}: framed port {srv.framed_port}, {a.workers} workers; logs in {logdir}")
    soak = Soak(a, srv)
    soak.server_command = benchlib.command_text(srv.cmd)
    try:
        soak.sample("start")
        for phase, share in PHASES:
            soak.phase(phase, a.duration * share)
        soak.sample("end")
        status = srv.wait_exit(0)  # still running, as it should be
        if status is not None:
            soak.problems.append(f"the master exited during the run (status {status})")
    finally:
        killed = srv.end()
    if killed:
        soak.problems.append(f"processes left after SIGTERM, killed: {killed}")
    if srv.status not in (0, None):
        soak.problems.append(f"the master's exit status {srv.status} after SIGTERM")
    machine["load_average_after"] = benchlib.loadavg()
    machine["page_fault_us_after"] = page_fault_us()
    return soak, machine, logdir


def document(a, soak, machine, argv):
    def of(phase):
        return [s for s in soak.samples if s["phase"] == phase]

    verdict = series.verdict(of("hostile"), of("alone"), of("after"))
    rows = series.rows(soak.samples, a.bucket_s, soak.kills)
    return {"command": benchlib.command_text(["bench/soak/soak.py", *argv]),
            "machine": machine,
            "settings": {"duration_s": a.duration, "workers": a.workers,
                         "connections": a.connections, "rate_rps": a.rate,
                         "hostile_per_kind": a.per_kind, "kill_every_s": a.kill_every,
                         "sample_every_s": a.sample_every, "slice_s": a.slice_s,
                         "timeouts_s": TIMEOUT_S,
                         "max_message": MAX_MESSAGE, "phases": dict(PHASES),
                         "server_args": server_args(), "tolerance": series.TOLERANCE,
                         "hostile": hostile_settings()},
            "server_command": soak.server_command,
            "phases": soak.phases, "hostile": soak.hostile, "kills": soak.kills,
            "verdict": verdict, "problems": soak.problems, "rows": rows,
            "samples": soak.samples}


def markdown(doc):
    m, st = doc["machine"], doc["settings"]
    v_head, v_lines = series.verdict_text(doc["verdict"])
    out = ["# Soak: RSS and descriptors under hostile clients and worker kills", "",
           f"`{doc['command']}` (bench/soak/soak.py), {m['date']}, commit `{m['commit'][:12]}`.",
           "", v_head, "", *v_lines, ""]
    if doc["problems"]:
        out += ["Problems:", ""] + [f"- {p}" for p in doc["problems"]] + [""]
    out += ["## Machine and conditions", "",
            f"- {benchlib.cpus_text(m)}{benchlib.virtual_text(m)}, {m['cpu']}, "
            f"{m['memory_gib']} GiB RAM, Linux {m['kernel']}, {m['os']}, {m['libc']}; built "
            f"{m['build_type']}.",
            f"- Load average (1, 5, 15 min): {m['load_average_before']} before, "
            f"{m['load_average_after']} after. The clients (prefork-bench, the hostile "
            "clients' Python threads) share the CPUs with the server and whatever else runs "
            "here: the phases are compared within this run only.",
            f"- A first touch of a fresh anonymous page: {m['page_fault_us_before']} µs "
            f"before, {m['page_fault_us_after']} µs after (0.1–0.5 µs is usual; some of "
            "these VMs take 10 µs or more, which slows whatever allocates).",
            f"- Server: `{doc['server_command']}` (5 s timeouts: every hostile connection is "
            "closed and reopened many times).",
            f"- Well-behaved: prefork-bench, framed keep-alive, {st['connections']} connections, "
            f"open loop at {st['rate_rps']:g} req/s (latency from each intended send time), "
            f"each reply checked upper-cased; run in slices of {st['slice_s']:g} s (a new "
            "prefork-bench each, its first second a warm-up), so that each phase has several "
            "p99s: the table gives their median and range.",
            f"- Hostile phase: {st['hostile_per_kind']} clients of each kind (idle, trickle a "
            "byte a second, never_read 256 KiB replies, oversized header, 256 random bytes, "
            "half a frame then RST), each reconnecting 0.1 s after its connection ends; a "
            f"worker SIGKILLed every {st['kill_every_s']:g} s, in the middle of a "
            "prefork-bench run (a kill in a run's warm-up would go uncounted).",
            f"- Phases: {', '.join(f'{k} {v:.0%}' for k, v in st['phases'].items())} of "
            f"{st['duration_s']:g} s; a sample every {st['sample_every_s']:g} s (RSS from "
            "/proc/PID/status VmRSS, descriptors from /proc/PID/fd, closes from /stats.json).",
            "", "## Well-behaved clients", "",
            "| phase | s | runs | answered | errors | success | p50 ms (median) | p99 ms "
            "(median, min–max) | max ms | behind schedule |", "|" + "---|" * 10]
    for r in doc["phases"]:
        kinds = ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
        missing = r["slices_without_result"]
        out.append(f"| {r['phase']} | {r['seconds']} | {r['slices']}"
                   f"{f' ({missing} without result)' if missing else ''} | {r['requests']} | "
                   f"{r['errors']}{f' ({kinds})' if kinds else ''} | "
                   f"{pct(r['success_rate'])} | {fmt(r['p50_ms'], 3)} | {fmt(r['p99_ms'], 3)} "
                   f"({fmt(r['p99_min_ms'], 3)}–{fmt(r['p99_max_ms'], 3)}) | "
                   f"{fmt(r['max_ms'], 1)} | {r['behind_schedule']} |")
    out += ["", series.latency_comparison(doc["phases"]) + " Errors in the hostile phase "
            "are requests in flight on a killed worker's connections.", "",
            "## Hostile clients", "",
            "| kind | connections | closed by the server | given up by the client | refused | "
            "other errors |", "|---|---|---|---|---|---|"]
    for kind, c in doc["hostile"].items():
        out.append(f"| {kind} | {c['connections']} | {c['closed_by_server']} | "
                   f"{c['closed_by_client']} | {c['refused']} | {c['errors']} |")
    out += ["", "`reset` closes its own connections (with an RST); every other kind should be "
            "closed by the server (a timeout, or the message limit: 256 random bytes nearly "
            "always begin with a length over it). A connection given up by the client is "
            "one still open when the phase ended, or one the server kept past "
            f"{hostile_settings()['hold_s']} s.", "",
            f"Workers killed: {len(doc['kills'])}.", "",
            "## Each prefork-bench run", "", runs_table(doc), "",
            "## RSS and descriptors over time", "",
            "Worker RSS: smallest and largest worker in the rows' samples; fds: the sum over "
            "all workers. Closed: connections closed in the row, by reason, from the "
            "scoreboard's totals.", "", series.table(doc["rows"]), ""]
    return "\n".join(out)


def runs_table(doc):
    """A line per prefork-bench run: when, its p99 and max, its errors, the kills in it."""
    lines = ["| phase | from s | to s | answered | errors | p99 ms | max ms | kills |",
             "|---|---|---|---|---|---|---|---|"]
    for phase in doc["phases"]:
        for r in phase.get("runs", []):
            if not r:
                lines.append(f"| {phase['phase']} | no result |||||||")
                continue
            kills = sum(1 for k in doc["kills"] if r["from_s"] <= k < r["to_s"])
            lines.append(f"| {phase['phase']} | {r['from_s']:.0f} | {r['to_s']:.0f} | "
                         f"{r['requests']} | {r['errors']} | {fmt(r['p99_ms'], 3)} | "
                         f"{fmt(r['max_ms'], 1)} | {kills} |")
    return "\n".join(lines)


def pct(rate):
    return "-" if rate is None else f"{100 * rate:.3f}%"


def main(argv):
    a = parse_args(argv)
    name = f"prefork_soak_{os.getpid()}"
    # SIGTERM, SIGINT, SIGHUP end the run; at exit (LIFO) the server is ended by pid,
    # then a scoreboard segment left by name is removed
    benchlib.stop_all_at_exit(name)
    atexit.register(server.end_all)
    atexit.register(end_clients)
    server.become_subreaper()
    soak, machine, logdir = run(a, name)
    doc = document(a, soak, machine, argv)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "soak.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "soak.md"), "w") as f:
        f.write(markdown(doc))
    head, lines = series.verdict_text(doc["verdict"])
    print("\n".join([head, *lines, *doc["problems"]]))
    good = doc["verdict"]["flat"] and not doc["problems"]
    if good:
        shutil.rmtree(logdir, ignore_errors=True)
    print(f"bench/soak: wrote {os.path.join(a.out, 'soak.md')} and soak.json"
          + ("" if good else f"; server logs kept in {logdir}"))
    return 0 if good else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except server.ServerError as e:
        sys.exit(f"bench/soak: {e}")
