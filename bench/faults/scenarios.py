"""The scenarios: each starts its own server, runs the load, injects one kind of
fault, checks what the clients saw and what the server left, and ends the
server. A scenario whose server lacks the feature it needs is "unsupported"
(detected from --help, or a flag refused with exit status 2), never a crash.

Every figure an assertion uses is a count (requests lost, pids changed,
processes left); times are reported, never asserted, except the descriptor
flood's CPU share, whose bound (half a core) is far from both an idle worker
and a busy loop (a whole core)."""

import os
import random
import re
import signal
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass, field

import attribution
import procfs
from attribution import Cut, Policy
from clients import Load, framed_probe, udp_probe
from server import (ServerError, ServerProcess, accepts_flag, copy_program, help_text,
                    shm_names)


@dataclass
class Settings:
    exe: str
    top: str
    logdir: str
    prefix: str  # scoreboard names: PREFIX<scenario>
    keepalive: int
    per_request: int
    udp: int
    fault_s: float  # kill9's kill loop, fd_exhaustion's flood hold
    phase_s: float  # load before and after a fault
    workers: int
    quick: bool


@dataclass
class Result:
    name: str
    status: str = "pass"  # pass, fail, unsupported, error
    reason: str = ""
    checks: list = field(default_factory=list)  # (what, ok, detail)
    tcp: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)
    lost: list = field(default_factory=list)  # the first lost requests, described
    udp: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, what, ok, detail=""):
        self.checks.append((what, bool(ok), detail))
        if not ok and self.status == "pass":
            self.status = "fail"
        return ok


def describe(f, base):
    t = lambda v: "-" if v is None else f"{v - base:.3f}"  # noqa: E731
    return (f"{f.client} port {f.port}: {f.error} ({f.detail}) connected {t(f.conn_start)} s, "
            f"sent {t(f.sent_at)} s, failed {t(f.failed_at)} s, {f.conn_answered} answered "
            f"before on it, {f.reply_bytes} reply bytes"
            + {True: ", acknowledged", False: ", never acknowledged"}.get(f.delivered, ""))


def account(result, load, policy, base):
    """Stops the load and puts its figures, categories and lost requests in `result`;
    checks that nothing was lost and that every client ended."""
    stuck = load.stop()
    figures, failures = load.tcp_figures()
    counts, lost = attribution.tally(failures, policy)
    inexact = [c.pid for c in policy.cuts if not c.exact]
    if inexact:  # rare: a machine too loaded to stop a worker within 10 s
        result.figures["cuts_listed_before_all_threads_stopped"] = inexact
    errors = attribution.error_counts(failures)
    result.tcp = {**figures, "failed": len(failures) + figures["unrecorded"], **errors}
    result.categories = counts
    result.lost = [describe(f, base) for f in lost[:8]]
    result.udp = load.udp_figures()
    n_lost = len(lost) + figures["unrecorded"]
    result.check("no request lost", n_lost == 0,
                 f"{n_lost} lost of {figures['sent']}" + (
                     f" ({figures['unrecorded']} failures past the record limit)"
                     if figures["unrecorded"] else ""))
    result.check("every client ended by itself", not stuck, ", ".join(stuck))
    return counts


class Scenario:
    name = ""
    needs = None  # what the server must support, for the "unsupported" message

    def __init__(self, settings):
        self.s = settings
        self.server = None

    def supported(self, help_text_):
        """None when the server can run this scenario, else why not."""
        return None

    def new_server(self, workers=None, extra=(), nofile=None, exe=None):
        self.server = ServerProcess(exe or self.s.exe, self.s.prefix + self.name, self.s.logdir,
                                    workers or self.s.workers, extra, nofile, self.s.top)
        self.server.start()
        self.server.wait_ready()
        return self.server

    def new_load(self, cap_s, **kw):
        s = self.server
        return Load(s.framed_port, s.udp_port, self.s.keepalive, self.s.per_request, self.s.udp,
                    cap_s, **kw)

    def warm_up(self, result, load):
        ok = load.wait_answered(2, 30)
        result.check("load started (every keep-alive client answered)", ok,
                     "" if ok else self.server.log_tail())

    def pause(self, seconds):
        time.sleep(seconds)  # a phase of load or a fault's length, never a readiness wait

    def probes(self, result):
        err = framed_probe(self.server.framed_port)
        result.check("a new connection is served", err is None, err or "")
        result.check("UDP is answered", udp_probe(self.server.udp_port))

    def run(self, result):
        raise NotImplementedError

    def execute(self, help_text_):
        result = Result(self.name)
        began = time.monotonic()
        why = self.supported(help_text_)
        if why:
            result.status, result.reason = "unsupported", why
            return result
        try:
            self.run(result)
        except (ServerError, OSError) as e:
            result.status, result.reason = "error", str(e)
        except Exception as e:  # noqa: BLE001 - a harness bug is reported, the run goes on
            result.status = "error"
            result.reason = f"{type(e).__name__}: {e}: " + traceback.format_exc(limit=3)
        finally:
            if self.server is not None:
                killed = self.server.end()
                if result.status in ("pass", "fail"):
                    if killed:
                        result.check("the server ended on SIGTERM", False,
                                     "had to SIGKILL " + "; ".join(killed))
                    elif self.server.segment_left and self.server.status == 0:
                        result.check("its scoreboard segment removed at exit", False,
                                     self.server.segment())
        result.seconds = round(time.monotonic() - began, 1)
        return result


def freeze(server, pid, reason):
    """SIGSTOPs worker `pid` and reads which connections it holds: frozen, it can accept
    nothing more while its descriptors are listed, so the list is exact. kill() returns
    before the stop has taken effect (a thread finishes the system call it is in, and a
    loaded machine may not run it for a while): the list is read once every thread is
    stopped, or after 10 s without it (then the Cut says it is not exact, and the
    scenario's figures count it). A Cut, or None when `pid` is no longer the master's
    child."""
    if not server.is_worker(pid) or not server.signal(pid, signal.SIGSTOP):
        return None
    end = time.monotonic() + 10
    while True:
        stopped = procfs.all_stopped(pid)
        if stopped is None:
            return None
        if stopped or time.monotonic() >= end:
            break
        time.sleep(0.001)
    ports = procfs.held_client_ports([pid], server.framed_port)
    return Cut(pid, time.monotonic(), frozenset(ports), reason, exact=stopped)


def serving_worker(server, board, holding=True):
    """A random ready, serving worker, else any ready one; None when none is ready.
    holding: one with open connections (EPOLLEXCLUSIVE gathers keep-alive connections on
    few workers: a random serving worker often holds none); else one that has answered a
    request, however young (a young one is what a crash-loop guard must not mistake for
    a worker failing to start)."""
    ready = [w for w in board["workers"]
             if w["state"] == "ready" and w["pid"] > 0 and server.is_worker(w["pid"])]
    if holding:
        serving = [w for w in ready if w.get("connections_active", 0) > 0]
    else:
        serving = [w for w in ready if w.get("requests", 0) > 0]
    return random.choice(serving or ready)["pid"] if ready else None


def master_state(server):
    if server.exited():
        lines = server.log_lines(r"giving up") or server.log_lines(r"master:.*(stop|exit)")
        return f"exited with status {server.status}" + (f": {lines[-1]}" if lines else "")
    return "running"


class Kill9(Scenario):
    """kill -9 random ready, serving workers every 200-500 ms (a pause of 150-350 ms after
    each kill, plus the time to pick the next worker and list its sockets) for fault_s s;
    half the kills hit a worker with open connections, half any that has served."""
    name = "kill9"

    def run(self, r):
        s = self.new_server(workers=max(self.s.workers, 4))
        load = self.new_load(self.s.fault_s + 4 * self.s.phase_s + 90)
        load.start()
        base = time.monotonic()
        self.warm_up(r, load)
        cuts, end, first_exit = [], time.monotonic() + self.s.fault_s, None
        next_kill = time.monotonic()
        while time.monotonic() < end:
            self.pause(max(0.0, next_kill - time.monotonic()))
            if s.exited():
                first_exit = time.monotonic() - base
                break
            board = s.stats()
            pid = serving_worker(s, board, holding=random.random() < 0.5) if board else None
            if pid is None:
                self.pause(0.05)
                continue
            cut = freeze(s, pid, attribution.KILLED)
            if cut:
                s.signal(pid, signal.SIGKILL)
                cuts.append(cut)
                next_kill = time.monotonic() + random.uniform(0.15, 0.35)  # kill to kill
        after_kills = time.monotonic()
        board, ready = s.wait_for(s.all_ready, 30)
        gaps = [b.at - a.at for a, b in zip(cuts, cuts[1:])]
        r.figures.update({
            "workers": s.workers, "kills": len(cuts),
            "kill_interval_s": f"mean {sum(gaps) / len(gaps):.2f}, max {max(gaps):.2f}"
                               if gaps else None,
            "connections_killed": sum(len(c.ports) for c in cuts),
            "worker_restarts": board.get("worker_restarts") if board else None,
            "all_ready_after_s": round(time.monotonic() - after_kills, 2) if ready else None,
            "master_exited_at_s": round(first_exit, 2) if first_exit else None})
        r.check(f"workers killed (every few hundred ms for {self.s.fault_s:g} s)", cuts,
                f"{len(cuts)} kills")
        r.check("the master kept respawning (still running)", not s.exited(),
                f"master {master_state(s)} after {len(cuts)} kills")
        r.check("all slots ready again", ready, "" if ready else s.log_tail())
        if not s.exited():
            self.probes(r)
        self.pause(self.s.phase_s)
        account(r, load, Policy(cuts=cuts), base)


class SigTerm(Scenario):
    """SIGTERM mid-load: graceful stop from the clients' side and what is left after."""
    name = "sigterm"

    def run(self, r):
        s = self.new_server()
        shm_before = shm_names(s.name)
        load = self.new_load(self.s.phase_s + 120)
        load.start()
        base = time.monotonic()
        self.warm_up(r, load)
        self.pause(self.s.phase_s)
        board = s.stats()
        workers = s.worker_pids(board) if board else []
        held = procfs.held_client_ports(workers, s.framed_port)
        accepted = Cut(0, time.monotonic(), frozenset(held), "accepted")
        answered_before = load.answered()
        stop_at = time.monotonic()
        s.signal(s.proc.pid, signal.SIGTERM)
        status = s.wait_exit(10 + 30)  # --graceful-timeout 10, and a margin
        exit_s = time.monotonic() - stop_at
        members = s.members()  # right after the master's exit: nothing may be left
        zombies = [p for p in members if p.state == "Z"]
        left = [p for p in members if p.state != "Z"]
        s.reap_adopted()
        r.figures.update({"connections_held_at_sigterm": len(held),
                          "seconds_to_exit": round(exit_s, 2),
                          "answered_after_sigterm": None})
        counts = account(r, load, Policy(stop_at=stop_at, accepted=accepted), base)
        r.figures["answered_after_sigterm"] = load.answered() - answered_before
        r.check("every request accepted before SIGTERM answered",
                counts.get(attribution.LOST, 0) == 0, "")
        r.check("the master exited 0", status == 0,
                "still running" if status is None else
                "" if status == 0 else f"status {status}" + s.log_tail())
        r.check("no process left", not left,
                "; ".join(f"pid {p.pid} ppid {p.ppid} state {p.state}" for p in left))
        r.check("no zombie", not zombies, "; ".join(f"pid {p.pid} ppid {p.ppid}" for p in zombies))
        new_segments = shm_names(s.name) - (shm_before - {s.name})
        r.check("no /dev/shm segment left", not new_segments, ", ".join(sorted(new_segments)))
        r.figures["udp_note"] = "the server is gone: UDP not probed after the stop"


class StopMaster(Scenario):
    """SIGSTOP the master for 4 s, then SIGCONT: it must not take the pause for silent
    workers and kill them."""
    name = "stop_master"
    STOP_S = 4.0

    def run(self, r):
        s = self.new_server()
        load = self.new_load(self.STOP_S + 3 * self.s.phase_s + 90)
        load.start()
        base = time.monotonic()
        self.warm_up(r, load)
        before = s.wait_ready()
        pids_before = sorted(s.worker_pids(before))
        self.pause(self.s.phase_s)
        answered0 = load.answered()
        s.signal(s.proc.pid, signal.SIGSTOP)
        self.pause(self.STOP_S)
        answered1 = load.answered()
        s.signal(s.proc.pid, signal.SIGCONT)
        self.pause(self.s.phase_s)
        after, ready = s.wait_for(s.all_ready, 30)
        pids_after = sorted(s.worker_pids(after)) if after else []
        r.figures.update({"answered_while_master_stopped": answered1 - answered0,
                          "workers_before": pids_before, "workers_after": pids_after})
        r.check("no worker killed (same worker pids)", pids_before == pids_after,
                f"before {pids_before}, after {pids_after}")
        r.check("restarts unchanged", after and after["worker_restarts"] ==
                before["worker_restarts"], f"{before['worker_restarts']} -> "
                f"{after['worker_restarts'] if after else '?'}")
        r.check("the master is running", not s.exited(), master_state(s))
        r.check("all slots ready", ready)
        self.probes(r)
        account(r, load, Policy(), base)


class StopWorker(Scenario):
    """SIGSTOP one serving worker past --timeout 2: the master must kill and replace it."""
    name = "stop_worker"
    TIMEOUT = 2

    def supported(self, help_text_):
        if not accepts_flag(self.s.exe, "--timeout", str(self.TIMEOUT)):
            return "the server has no --timeout (worker heartbeat timeout)"
        return None

    def run(self, r):
        s = self.new_server(extra=["--timeout", str(self.TIMEOUT)])
        load = self.new_load(self.TIMEOUT + 3 * self.s.phase_s + 120)
        load.start()
        base = time.monotonic()
        self.warm_up(r, load)
        before = s.wait_ready()
        # Counted as killed by the heartbeat (exits.timed_out) where the server counts
        # that cause, else as killed by a signal.
        cause = "timed_out" if "timed_out" in before["exits"] else "signaled"
        signaled0 = before["exits"][cause]
        self.pause(self.s.phase_s)
        pid = serving_worker(s, before)
        cut = freeze(s, pid, "stopped with its worker") if pid else None
        r.check("a serving worker stopped", cut, f"pid {pid}")
        if not cut:
            account(r, load, Policy(), base)
            return
        stopped_at = time.monotonic()
        while s.is_worker(pid) and time.monotonic() < stopped_at + self.TIMEOUT + 30:
            time.sleep(0.05)
        gone = not s.is_worker(pid)
        ended_s = time.monotonic() - stopped_at
        after, ready = s.wait_for(lambda b: s.all_ready(b) and pid not in s.worker_pids(b), 30)
        r.figures.update({
            "stopped_worker": pid, "connections_on_it": len(cut.ports),
            "seconds_to_its_end": round(ended_s, 2) if gone else None,
            "exits_" + cause: f"{signaled0} -> {after['exits'][cause] if after else '?'}",
            "master_log": s.log_lines(rf"\b{pid}\b")[-3:]})
        r.check(f"the master ended the stopped worker (within --timeout {self.TIMEOUT} + 30 s)",
                gone, f"pid {pid} still there after {ended_s:.1f} s")
        r.check("its slot replaced, all slots ready", ready)
        r.check(f"the exit counted ({cause})", after and after["exits"][cause] > signaled0,
                r.figures["exits_" + cause])
        self.probes(r)
        self.pause(self.s.phase_s)
        account(r, load, Policy(cuts=[cut]), base)


class FdExhaustion(Scenario):
    """Runs the server under ulimit -n NOFILE and opens more connections than fit: the
    workers must recover once the flood closes, without a busy loop meanwhile.

    "No busy loop" is checked by count, not by CPU time (which a slow or shared machine
    moves): a worker out of descriptors pauses ACCEPT_PAUSE_S before it tries accept()
    again, and counts each failure (error_kinds.other), so a flood of W seconds costs
    each worker at most about W / ACCEPT_PAUSE_S failures; a loop retrying at once counts
    thousands a second. A slower machine only retries less often. The workers' CPU share
    is reported beside it."""
    name = "fd_exhaustion"
    NOFILE = 64
    ACCEPT_PAUSE_S = 0.1  # workers/src/accept_failure.hpp: accept_pause

    @staticmethod
    def accept_failures(s, pids):
        """Each worker's failed calls as its slot counts them ({pid: count}; a pid the
        board does not show is left out): the master's /stats.json, else prefork-top's."""
        for source in (s.stats, s.scoreboard):
            board = source()
            if board:
                return {w["pid"]: w["error_kinds"]["other"] for w in board["workers"]
                        if w["pid"] in pids}
        return {}

    def run(self, r):
        workers = 2
        s = self.new_server(workers=workers, nofile=self.NOFILE)
        # paced clients: the workers' CPU during the flood should be the flood's, not the load's
        load = self.new_load(self.s.fault_s + 3 * self.s.phase_s + 120, keepalive_pace_s=0.01,
                             per_request_pace_s=0.05)
        load.start()
        base = time.monotonic()
        self.warm_up(r, load)
        board = s.wait_ready()
        pids = s.worker_pids(board)
        emfile0 = len(s.log_lines(r"accept4.*(Too many open files|EMFILE)"))
        failures0 = self.accept_failures(s, pids)
        cpu0 = {p: procfs.read_stat(p).cpu_s for p in pids}
        flood_begin = time.monotonic()
        flood, refused, most_fds = [], 0, {}
        try:
            for _ in range(workers * self.NOFILE + 100):
                sock = socket.socket()
                sock.settimeout(5)
                try:
                    sock.connect(("127.0.0.1", s.framed_port))
                    flood.append(sock)
                except OSError:
                    refused += 1
                    sock.close()
            end = time.monotonic() + self.s.fault_s
            while time.monotonic() < end:
                for p in pids:
                    n = procfs.descriptor_count(p) or 0
                    most_fds[p] = max(most_fds.get(p, 0), n)
                time.sleep(0.1)
            cpu1 = {p: (procfs.read_stat(p) or procfs.ProcStat(p, "?", 0, 0, 0, cpu0[p])).cpu_s
                    for p in pids}
            failures1 = self.accept_failures(s, pids)
            wall = time.monotonic() - flood_begin
        finally:
            for sock in flood:
                sock.close()
        flood_end = time.monotonic()
        recovered_at, err = None, "not tried"
        while time.monotonic() < flood_end + 30:
            err = framed_probe(s.framed_port, timeout=5)
            if err is None:
                recovered_at = time.monotonic()
                break
            time.sleep(0.1)
        share = {p: round((cpu1[p] - cpu0[p]) / wall, 3) for p in pids}
        failures = {p: failures1[p] - failures0[p] if p in failures0 and p in failures1 else None
                    for p in pids}
        # Twice the paced count, plus one retry at each end: a bound by design.
        most_failures = 2 * (int(wall / self.ACCEPT_PAUSE_S) + 2)
        emfile = len(s.log_lines(r"accept4.*(Too many open files|EMFILE)")) - emfile0
        r.figures.update({
            "nofile": self.NOFILE, "flood_connections": len(flood), "flood_failed": refused,
            "worker_descriptors_peak": most_fds, "accept_emfile_log_lines": emfile,
            "flood_s": round(wall, 2), "worker_accept_failures": failures,
            "worker_cpu_share_of_wall": share,
            "recovered_after_s": round(recovered_at - flood_end, 2) if recovered_at else None})
        r.check("the workers ran out of descriptors",
                emfile > 0 or any(n >= self.NOFILE for n in most_fds.values()),
                f"peak descriptors {most_fds}, {emfile} EMFILE log lines")
        r.check(f"no busy loop (each worker's failed accepts at most {most_failures}, "
                f"one per {self.ACCEPT_PAUSE_S:g} s pause)",
                all(v is not None and v <= most_failures for v in failures.values()),
                f"{failures} (CPU share of the wall time {share})")
        # At most one line a second per worker (and one more at each end of the span):
        # a count bound by design, not by speed.
        most_lines = workers * (int(time.monotonic() - flood_begin) + 2)
        r.check(f"EMFILE logged at most once a second per worker ({most_lines} lines at most)",
                emfile <= most_lines, f"{emfile} lines")
        r.check("recovered: a new connection served after the flood", recovered_at, err or "")
        r.check("the master is running", not s.exited(), master_state(s))
        r.check("UDP is answered", udp_probe(s.udp_port))
        self.pause(self.s.phase_s)
        account(r, load, Policy(flood=(flood_begin, recovered_at or flood_end)), base)


class Hup(Scenario):
    """SIGHUP ten times in a row under load: a rolling reload, nothing refused or lost."""
    name = "hup"
    COUNT = 10

    def supported(self, text):
        if not re.search(r"\bHUP\b[^\n]*(reload|roll)", text, re.I):
            return "the server's --help names no SIGHUP reload"
        return None

    def run(self, r):
        s = self.new_server()
        load = self.new_load(3 * self.s.phase_s + 180)
        load.start()
        base = time.monotonic()
        self.warm_up(r, load)
        before = s.wait_ready()
        old = set(s.worker_pids(before))
        master = s.proc.pid
        self.pause(self.s.phase_s)
        began = time.monotonic()
        for _ in range(self.COUNT):
            s.signal(master, signal.SIGHUP)
            self.pause(0.3)
        after, rolled = s.wait_for(
            lambda b: s.all_ready(b) and not old & set(s.worker_pids(b)), 90)
        r.figures.update({"hups": self.COUNT, "seconds_to_a_new_generation":
                          round(time.monotonic() - began, 2) if rolled else None,
                          "generation": f"{before['generation']} -> "
                                        f"{after['generation'] if after else '?'}"})
        r.check("the master is running (same pid)", not s.exited(), master_state(s))
        r.check("every worker replaced, all slots ready", rolled,
                f"workers {s.worker_pids(after) if after else '?'}, old {sorted(old)}")
        self.probes(r)
        self.pause(self.s.phase_s)
        account(r, load, Policy(closed_idle_ok=True), base)
        r.check("zero refused connections", r.tcp["refused"] == 0, f"{r.tcp['refused']}")


BROKEN = """#!/bin/sh
echo "faults harness: broken upgrade binary started (pid $$)" >&2
exit 1
"""


class Upgrade(Scenario):
    """SIGUSR2: the master re-executes its program and hands the listeners over; then
    an upgrade to a program that fails at once must roll back. The server runs from a
    copy of its program in a temporary directory; before the second USR2 that copy is
    replaced (renamed over) by a script that exits 1."""
    name = "upgrade"

    def supported(self, text):
        if not re.search(r"\bUSR2\b[^\n]*(upgrade|re-?exec)", text, re.I):
            return "the server's --help names no SIGUSR2 binary upgrade"
        if not self.s.top:
            return "prefork-top not found (the scoreboard name is checked with it)"
        return None

    def run(self, r):
        tmp = tempfile.mkdtemp(prefix="faults-upgrade.", dir=self.s.logdir)
        exe = copy_program(self.s.exe, tmp)
        s = self.new_server(exe=exe)
        load = self.new_load(6 * self.s.phase_s + 240)
        load.start()
        base = time.monotonic()
        self.warm_up(r, load)
        old_master = s.proc.pid
        self.pause(self.s.phase_s)
        began = time.monotonic()
        s.signal(old_master, signal.SIGUSR2)
        board, ok = s.wait_for(lambda b: b["master_pid"] != old_master and s.all_ready(b), 90,
                               source=s.scoreboard)
        new_master = board["master_pid"] if ok else None
        status = s.wait_exit(90)
        r.figures.update({"old_master": old_master, "new_master": new_master,
                          "old_master_exit": status,
                          "seconds_to_new_master_ready": round(time.monotonic() - began, 2)
                          if ok else None})
        r.check("prefork-top NAME shows a new master, all slots ready", ok,
                f"master_pid {board['master_pid'] if board else '?'}")
        r.check("the old master exited 0", status == 0,
                "" if status == 0 else f"status {status}" + s.log_tail())
        self.probes(r)
        self.pause(self.s.phase_s)
        if new_master is None:
            account(r, load, Policy(closed_idle_ok=True), base)
            return
        # the rollback: the program the master would re-execute now fails at once
        broken = os.path.join(tmp, "broken")
        with open(broken, "w") as f:
            f.write(BROKEN)
        os.chmod(broken, 0o755)
        os.replace(broken, exe)
        s.signal(new_master, signal.SIGUSR2)
        end, seen = time.monotonic() + 60, False
        while time.monotonic() < end and not seen:
            seen = bool(s.log_lines(r"broken upgrade binary started"))
            time.sleep(0.05)
        self.pause(2 * self.s.phase_s)  # the old generation must go on serving meanwhile
        board = s.scoreboard()
        r.figures["master_after_rollback"] = board["master_pid"] if board else None
        r.check("the broken program was started", seen, "" if seen else "its line never came" + s.log_tail())
        r.check("rollback: the same master serves, all slots ready",
                board and board["master_pid"] == new_master and s.all_ready(board) and
                procfs.read_stat(new_master) is not None, f"{r.figures['master_after_rollback']}")
        self.probes(r)
        account(r, load, Policy(closed_idle_ok=True), base)
        r.check("zero refused connections", r.tcp["refused"] == 0, f"{r.tcp['refused']}")


ALL = [Kill9, SigTerm, StopMaster, StopWorker, FdExhaustion, Hup, Upgrade]
BY_NAME = {c.name: c for c in ALL}


def run_all(names, settings, on_result=None):
    text = help_text(settings.exe)
    results = []
    for name in names:
        result = BY_NAME[name](settings).execute(text)
        results.append(result)
        if on_result:
            on_result(result)
    return results
