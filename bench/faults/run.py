#!/usr/bin/env python3
"""Fault injection: a prefork server under load, from its clients' side.

Starts the server (by default build/bin/upper_server: framed TCP and UDP on
127.0.0.1 port 0, --metrics 127.0.0.1:0; the ports come from the `listening`
lines it prints), drives continuous load from many clients (framed TCP
keep-alive and connection-per-request, UDP), counts every request, and runs
each scenario against a fresh server:

  kill9          kill -9 random ready, serving workers every few hundred ms: the
                 master keeps respawning, all slots ready at the end, no request
                 lost on a connection whose worker was not killed
  sigterm        SIGTERM mid-load: every request sent on an accepted connection
                 before the signal is answered; exit 0; no process, zombie or
                 /dev/shm segment left
  stop_master    SIGSTOP the master 4 s, then SIGCONT: no worker killed, nothing lost
  stop_worker    SIGSTOP a worker past --timeout 2: killed and replaced (needs --timeout)
  fd_exhaustion  ulimit -n 64 and a flood of connections: recovery, no busy loop
  hup            SIGHUP ten times: nothing refused or lost (needs a HUP reload)
  upgrade        SIGUSR2 binary upgrade, then one to a program that fails: nothing
                 refused or lost, rollback (needs a USR2 upgrade)

A request is lost when it failed and its fault does not explain it (see
attribution.py): killed or stopped with its worker; sent after SIGTERM on a
connection the server then closed cleanly; a reused keep-alive connection closed
before any byte of the reply during a reload or upgrade (the race HTTP clients
retry); a connection begun during the descriptor flood. Any lost request fails
its scenario. UDP is lossy: counted, and only required to be answered after
each fault.

A scenario whose feature the server lacks (from --help, or a flag refused with
exit status 2) is reported "unsupported". Which failures a fault explains is
decided in attribution.py: a worker is SIGSTOPped for the moment it takes to list
its sockets (/proc/PID/fd, /proc/net/tcp) before it is killed, so each failed
connection is known to have been on it or not. Assertions use counts, never
times: the machine may be shared and noisy.

  bench/faults/run.py --report bench/results/faults.md --json bench/results/faults.json
  bench/faults/run.py --quick --scenarios sigterm,stop_master     # under 90 s
  bench/faults/run.py --server OTHER/bin/upper_server --clients 64 --duration 60

Exit status: 0 when every scenario that ran passed, 1 when one failed, 2 on a
usage error. Every process it starts is ended by pid, also on failure or Ctrl-C.
Python 3.11 standard library only."""

import argparse
import atexit
import os
import resource
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # bench/benchlib.py: the machine's description

import report  # noqa: E402
import scenarios  # noqa: E402
import server  # noqa: E402
from clients import end_load  # noqa: E402
from benchlib import RESULTS, ROOT, loadavg  # noqa: E402



def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/faults/run.py", description=__doc__.splitlines()[0],
        epilog=f"Scenarios: {', '.join(scenarios.BY_NAME)}.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(ROOT, "build", "bin", "upper_server"),
                   help="the server program: upper_server or one with its flags and framed "
                        "upper-casing handler (default build/bin/upper_server)")
    p.add_argument("--top", help="prefork-top (default: next to --server)")
    p.add_argument("--scenarios", default=",".join(scenarios.BY_NAME),
                   help="comma-separated, run in this order (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="a bounded run for CI: fewer clients, shorter phases (about a minute "
                        "on 2 vCPUs for all seven scenarios)")
    p.add_argument("--duration", type=float,
                   help="seconds of kill9's kill loop and of the descriptor flood (default "
                        "20, --quick 4)")
    p.add_argument("--clients", type=int,
                   help="keep-alive TCP clients; a quarter as many connection-per-request "
                        "and an eighth as many UDP clients, at least one each (default 32, "
                        "--quick 6)")
    p.add_argument("--workers", type=int, help="worker processes (default 2; kill9 at least 4)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--report", metavar="FILE", help="write the markdown report")
    a = p.parse_args(argv)
    names = [n for n in a.scenarios.split(",") if n]
    unknown = [n for n in names if n not in scenarios.BY_NAME]
    if unknown or not names:
        p.error(f"unknown scenario {', '.join(unknown) or '(none given)'}: choose from "
                f"{', '.join(scenarios.BY_NAME)}")
    a.names = names
    if not os.access(a.server, os.X_OK):
        p.error(f"{a.server} is not an executable: build first (cmake -S {ROOT} -B build && "
                "cmake --build build -j2) or give --server")
    a.server = os.path.abspath(a.server)
    a.top = a.top or os.path.join(os.path.dirname(a.server), "prefork-top")
    if not os.access(a.top, os.X_OK):
        a.top = None
    if a.quick:
        for path in (a.report, a.json):
            if path and os.path.realpath(os.path.dirname(os.path.abspath(path))) == \
                    os.path.realpath(RESULTS):
                p.error("--quick never writes bench/results/: give another path")
    for flag in ("duration", "clients", "workers"):
        v = getattr(a, flag)
        if v is not None and v <= 0:
            p.error(f"--{flag} must be positive")
    return a


def settings_of(a, logdir):
    keepalive = a.clients or (6 if a.quick else 32)
    return scenarios.Settings(
        exe=a.server, top=a.top, logdir=logdir, prefix=f"prefork_faults_{os.getpid()}_",
        keepalive=keepalive, per_request=max(1, keepalive // 4), udp=max(1, keepalive // 8),
        fault_s=a.duration or (4.0 if a.quick else 20.0), phase_s=1.0 if a.quick else 3.0,
        workers=a.workers or 2, quick=a.quick)


def raise_descriptor_limit():
    """The clients and the descriptor flood need a few hundred descriptors here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv):
    a = parse_args(argv)

    def on_signal(signum, _frame):
        raise SystemExit(f"bench/faults/run.py: stopped by signal {signum}")

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(server.end_all)
    atexit.register(end_load)
    raise_descriptor_limit()
    subreaper = server.become_subreaper()
    logdir = tempfile.mkdtemp(prefix="faults.")
    settings = settings_of(a, logdir)
    load_before = loadavg()
    print(f"bench/faults: {a.server}, scenarios {','.join(a.names)}"
          f"{' (quick)' if a.quick else ''}; server logs in {logdir}"
          + ("" if subreaper else "; not a subreaper: orphans are found by group only"),
          flush=True)
    began = time.monotonic()

    def show(r):
        print(report.scenario_text(r), flush=True)

    try:
        results = scenarios.run_all(a.names, settings, show)
    finally:
        end_load()
        server.end_all()
    print()
    print(report.summary_text(results))
    verdict = report.verdict(results)
    print(f"bench/faults: {verdict} in {time.monotonic() - began:.0f} s")
    build = os.path.dirname(os.path.dirname(a.server))
    doc = report.document(results, settings, ["bench/faults/run.py", *argv], build, load_before)
    if a.json:
        report.write_json(a.json, doc)
    if a.report:
        report.write_markdown(a.report, doc, results)
    if verdict == "PASS":
        shutil.rmtree(logdir, ignore_errors=True)
    else:
        print(f"bench/faults: server logs kept in {logdir}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        end_load()
        server.end_all()
        sys.exit(130)
