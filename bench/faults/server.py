"""One server under test: started in its own session on 127.0.0.1 port 0, its
ports read from the `listening ...` lines it prints, its state read from the
master's /stats.json (or the scoreboard through prefork-top), and every
process it started accounted for and ended by pid, whatever happens.

The harness makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER):
processes a master leaves behind (workers of a master that died, a new master
after a binary upgrade) become the harness's children instead of init's, so
they can be found, waited for and reported as leftovers."""

import ctypes
import json
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import procfs

PR_SET_CHILD_SUBREAPER = 36
LIVE = {}  # master pid -> ServerProcess, ended by end_all() at exit


def become_subreaper():
    """True when this process now adopts the orphans of its descendants."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def help_text(exe):
    """The server's --help output ("" when it cannot be run)."""
    try:
        r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
        return r.stdout + r.stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""


def accepts_flag(exe, flag, value):
    """Whether `exe` takes `flag value` (prefork's usage error is exit 2): --help must
    name the flag, and a run with it and --version must not be a usage error."""
    if not re.search(rf"(^|\s){re.escape(flag)}\b", help_text(exe), re.M):
        return False
    try:
        r = subprocess.run([exe, flag, value, "--version"], capture_output=True, timeout=20,
                           stdin=subprocess.DEVNULL)
        return r.returncode != 2
    except (OSError, subprocess.TimeoutExpired):
        return False


def root_flags(exe):
    """["--allow-root"] when run as root by a server that knows the flag: a root master
    refuses root workers without it (the harness's clients need nothing of root)."""
    if os.geteuid() != 0:
        return []
    return ["--allow-root"] if "--allow-root" in help_text(exe) else []


class ServerError(RuntimeError):
    pass


class ServerProcess:
    def __init__(self, exe, name, logdir, workers, extra_args=(), nofile=None, top=None):
        self.exe = exe
        self.name = name  # the scoreboard's name: /dev/shm/NAME
        self.workers = workers
        self.top = top
        self.cmd = [exe, "--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0",
                    "--metrics", "127.0.0.1:0", "--workers", str(workers), "--stats", name,
                    "--graceful-timeout", "10", *root_flags(exe), *extra_args]
        self.nofile = nofile
        self.log = os.path.join(logdir, name + ".err")
        self.proc = None
        self.framed_port = self.udp_port = self.metrics = None
        self.stdout_lines = []
        self.status = None  # the original master's exit status, once waited for
        self.pids = set()  # every master and worker pid seen
        self.groups = set()  # their sessions and process groups
        self.stopped = set()  # pids this harness SIGSTOPped and has not continued
        self.segment_left = False  # end() found the scoreboard segment still there

    # --- starting --------------------------------------------------------------------

    def start(self, timeout=30.0):
        """Starts the master and reads its ports from its `listening` lines."""
        limit = self.nofile

        def before_exec():
            if limit:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=before_exec if limit else None)
        LIVE[self.proc.pid] = self
        self.pids.add(self.proc.pid)
        self.groups.add(self.proc.pid)
        fd, text, end = self.proc.stdout.fileno(), b"", time.monotonic() + timeout
        while True:
            ports = self.parse_listening(text.decode(errors="replace"))
            if all(ports.get(k) for k in ("framed", "udp", "metrics")):
                break
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ServerError(f"no 'listening' lines within {timeout} s" + self.log_tail())
            chunk = os.read(fd, 4096)
            if not chunk:
                raise ServerError(f"exited before listening (status {self.proc.wait()})"
                                  + self.log_tail())
            text += chunk
        self.framed_port = ports["framed"]
        self.udp_port = ports["udp"]
        self.metrics = ports["metrics_address"]
        self.stdout_lines = text.decode(errors="replace").splitlines()
        threading.Thread(target=self.drain_stdout, daemon=True).start()

    @staticmethod
    def parse_listening(text):
        """{framed: port, udp: port, metrics: port, metrics_address: HOST:PORT} from the
        first `listening PROTO HOST:PORT` line of each kind."""
        out = {}
        for line in text.splitlines():
            m = re.match(r"listening (\w+) (\S+):(\d+)$", line.strip())
            if m and m.group(1) not in out:
                out[m.group(1)] = int(m.group(3))
                if m.group(1) == "metrics":
                    out["metrics_address"] = f"{m.group(2)}:{m.group(3)}"
        return out

    def drain_stdout(self):
        """Keeps reading the masters' stdout (a new master after an upgrade inherits it)."""
        try:
            for line in self.proc.stdout:
                self.stdout_lines.append(line.decode(errors="replace").rstrip("\n"))
        except (OSError, ValueError):
            pass

    # --- looking ---------------------------------------------------------------------

    def stats(self, timeout=3.0):
        """The master's /stats.json, or None (the master is stopped, gone or busy)."""
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/stats.json",
                                        timeout=timeout) as r:
                board = json.loads(r.read())
        except (OSError, ValueError):
            return None
        self.note(board)
        return board

    def scoreboard(self):
        """The scoreboard as prefork-top --json --once NAME shows it, or None."""
        if not self.top:
            return None
        try:
            r = subprocess.run([self.top, "--json", "--once", self.name], capture_output=True,
                               text=True, timeout=10, stdin=subprocess.DEVNULL)
            board = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None
        if board:
            self.note(board)
        return board

    def note(self, board):
        """Remembers every pid and process group a board shows, for the leftover check."""
        for pid in [board.get("master_pid")] + [w.get("pid") for w in board["workers"]]:
            if pid and pid > 0:
                self.pids.add(pid)
                s = procfs.read_stat(pid)
                if s:
                    self.groups |= {s.pgid, s.sid}

    def all_ready(self, board):
        """As many live workers as asked for, every one ready. The table may show empty
        slots too: it has room for replacements started before the old worker stops."""
        if not board:
            return False
        live = [w for w in board["workers"] if w["state"] != "empty"]
        return len(live) == self.workers and all(
            w["state"] == "ready" and w["pid"] > 0 for w in live)

    def wait_for(self, predicate, timeout, source=None):
        """Polls the board (stats() by default) until predicate(board); the last board,
        and whether it came true. Stops early when the original master has exited and no
        other master is known."""
        source = source or self.stats
        end, board = time.monotonic() + timeout, None
        while True:
            board = source()
            if board and predicate(board):
                return board, True
            if time.monotonic() > end or (self.exited() and source == self.stats):
                return board, False
            time.sleep(0.05)

    def wait_ready(self, timeout=30.0):
        board, ok = self.wait_for(self.all_ready, timeout)
        if not ok:
            master = f"exited {self.status}" if self.exited() else "running"
            raise ServerError(f"{self.workers} workers not ready within {timeout} s (master "
                              f"{master})" + self.log_tail())
        return board

    def worker_pids(self, board):
        return [w["pid"] for w in board["workers"] if w["pid"] > 0]

    def is_worker(self, pid, master=None):
        """True when `pid` is a live child of the master: never signal anything else."""
        s = procfs.read_stat(pid)
        return bool(s) and s.ppid == (master or self.proc.pid) and s.state != "Z"

    def exited(self):
        """True once the original master has exited (its status is then in self.status)."""
        if self.status is None and self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                self.status = code
        return self.status is not None

    def log_tail(self, lines=4):
        try:
            with open(self.log, errors="replace") as f:
                tail = f.read().strip().splitlines()[-lines:]
            return ("; server stderr: " + " | ".join(tail)) if tail else ""
        except OSError:
            return ""

    def log_lines(self, pattern):
        try:
            with open(self.log, errors="replace") as f:
                return [line.rstrip() for line in f if re.search(pattern, line)]
        except OSError:
            return []

    # --- signals ---------------------------------------------------------------------

    def signal(self, pid, sig):
        """Sends `sig` to `pid` (one of this server's); False when it is gone."""
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        if sig == signal.SIGSTOP:
            self.stopped.add(pid)
        elif sig in (signal.SIGCONT, signal.SIGKILL):
            self.stopped.discard(pid)
        return True

    def members(self):
        """The processes of this server now (its sessions, groups, or children of a pid it
        had), but not the harness itself."""
        return [s for s in procfs.processes_of(self.pids, self.groups) if s.pid != os.getpid()]

    # --- ending ----------------------------------------------------------------------

    def wait_exit(self, timeout):
        """Waits for the original master to exit; its status, or None at `timeout`."""
        try:
            self.status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.status

    def reap_adopted(self):
        """Waits for the zombies this harness adopted (as subreaper) from this server."""
        for s in self.members():
            if s.ppid == os.getpid() and s.state == "Z" and s.pid != self.proc.pid:
                try:
                    os.waitpid(s.pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def end(self, grace=15.0):
        """Ends everything this server started: SIGCONT what this harness stopped, SIGTERM
        to the masters, then after `grace` SIGKILL to every process left in its sessions
        and groups, each by pid. Removes its scoreboard segment if it is still there
        (segment_left says so). Returns the processes that had to be killed (a
        description each)."""
        for pid in list(self.stopped):
            self.signal(pid, signal.SIGCONT)
        masters = {self.proc.pid} if not self.exited() else set()
        masters |= {s.pid for s in self.members() if s.pid in self.pids and s.state != "Z"
                    and s.ppid not in self.pids}
        for pid in masters:
            self.signal(pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            self.exited()
            self.reap_adopted()
            if self.exited() and not [s for s in self.members() if s.state != "Z"]:
                break
            time.sleep(0.05)
        killed = []
        for s in self.members():
            if s.state != "Z":
                killed.append(f"pid {s.pid} (ppid {s.ppid}, state {s.state})")
                self.signal(s.pid, signal.SIGKILL)
        if not self.exited():
            self.wait_exit(10)
        end = time.monotonic() + 5
        while self.members() and time.monotonic() < end:
            self.reap_adopted()
            time.sleep(0.05)
        # a master killed by a signal (or by this harness) leaves its segment: it is this
        # run's own name, so remove it; after a clean exit the caller hears of it
        self.segment_left = os.path.exists(self.segment())
        if self.segment_left:
            os.unlink(self.segment())
        LIVE.pop(self.proc.pid, None)
        if self.proc.stdout:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        return killed

    def segment(self):
        return f"/dev/shm/{self.name}"


def end_all():
    """end() of every server still live: at exit, on failure, on Ctrl-C."""
    for server in list(LIVE.values()):
        try:
            server.end(grace=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def shm_names(prefix):
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


def copy_program(exe, directory):
    """A copy of `exe` in `directory` (the upgrade scenario swaps it for a broken one)."""
    path = os.path.join(directory, os.path.basename(exe))
    shutil.copy2(exe, path)
    return path
