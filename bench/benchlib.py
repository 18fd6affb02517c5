"""What the benchmark commands (bench/models, bench/spawn, bench/overhead)
share: the description of the machine a result was measured on, how busy
that machine was meanwhile, and (bench/models, bench/overhead) running
bench_server and prefork-bench."""

import atexit
import datetime
import glob
import json
import os
import platform
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_first(path, pattern):
    """Group 1 of the first line of `path` matching the regex `pattern`."""
    try:
        with open(path) as f:
            for line in f:
                m = re.match(pattern, line)
                if m:
                    return m.group(1).strip()
    except OSError:
        pass
    return "unknown"


def loadavg():
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_times():
    """(all ticks, idle + iowait ticks, steal ticks) of the machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4], fields[7] if len(fields) > 7 else 0


def git_commit():
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine(build):
    """The machine and the build that a result was measured on."""
    mem_kib = read_first("/proc/meminfo", r"MemTotal:\s+(\d+)")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": read_first("/proc/cpuinfo", r"model name\s*:\s*(.*)"),
        # the CPU says it runs under a hypervisor: its CPUs are virtual (vCPUs)
        "virtual_machine": "hypervisor" in read_first("/proc/cpuinfo",
                                                      r"flags\s*:\s*(.*)").split(),
        "memory_gib": round(int(mem_kib) / 1048576, 1) if mem_kib.isdigit() else 0,
        "kernel": platform.release(),
        "libc": " ".join(os.confstr("CS_GNU_LIBC_VERSION").split()),
        "os": read_first("/etc/os-release", r'PRETTY_NAME="?([^"]*)"?'),
        "build_type": read_first(os.path.join(build, "CMakeCache.txt"),
                                 r"CMAKE_BUILD_TYPE:STRING=(.*)"),
        "transparent_hugepage": read_first("/sys/kernel/mm/transparent_hugepage/enabled",
                                           r"(.*)"),
        "commit": git_commit(),
        "load_average_before": loadavg(),
    }


def cpu_word(m):
    """What one CPU of machine() `m` is called: "vCPU" on a virtual machine, else "CPU"."""
    return "vCPU" if m.get("virtual_machine") else "CPU"


def cpus_text(m):
    """The CPUs a result ran on, as "2 vCPUs" or "8 CPUs"."""
    return f"{m['nproc']} {cpu_word(m)}{'' if m['nproc'] == 1 else 's'}"


def virtual_text(m):
    """What a report says of a virtual machine after its CPUs, else nothing."""
    return (" of a virtual machine (the CPU reports a hypervisor; other guests may share its "
            "host)" if m.get("virtual_machine") else "")


def machine_text(m):
    """The kind of machine, as "2-vCPU virtual machine" or "8-CPU machine"."""
    kind = "virtual machine" if m.get("virtual_machine") else "machine"
    return f"{m['nproc']}-{cpu_word(m)} {kind}"


# --- running bench_server and prefork-bench -----------------------------------------------

RESULTS = os.path.join(ROOT, "bench", "results")
PROGRAMS = ("bench_server", "prefork-bench", "prefork-top")


def add_run_arguments(parser, quick_help):
    """--build, --quick and --out."""
    parser.add_argument("--build", default=os.path.join(ROOT, "build"),
                        help="build directory with bin/bench_server, bin/prefork-bench, "
                             "bin/prefork-top (default: build/)")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", help="where to write (default bench/results/, or a new "
                                      "temporary directory with --quick)")


def bins_and_out(parser, args, name):
    """The bin/ directory of --build, with PROGRAMS in it, and the directory to write (made):
    --out, else bench/results/, or with --quick a new temporary directory NAME-quick.*, never
    bench/results/. A usage error when one is missing."""
    bins = os.path.join(os.path.abspath(args.build), "bin")
    for prog in PROGRAMS:
        if not os.access(os.path.join(bins, prog), os.X_OK):
            parser.error(f"{os.path.join(bins, prog)} is missing: build first "
                         f"(cmake -S {ROOT} -B BUILD && cmake --build BUILD -j2)")
    if args.quick:
        out = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix=f"{name}-quick.")
        if os.path.realpath(out) == os.path.realpath(RESULTS):
            parser.error("--quick never writes bench/results/: give another --out")
    else:
        out = os.path.abspath(args.out) if args.out else RESULTS
    os.makedirs(out, exist_ok=True)
    return bins, out

LIVE = {}  # pid -> Server, stopped at exit whatever happens


def model_facts(bins):
    """The server models' facts from the one table in the code (prefork/models.hpp), as
    bench_server --list-models prints them: {name: {pool, threads, default_threads, ...}}."""
    out = subprocess.run([os.path.join(bins, "bench_server"), "--list-models"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return {m["name"]: m for m in (json.loads(line) for line in out.splitlines() if line)}


def say(text):
    print(f"bench/{os.path.basename(sys.argv[0])}: {text}", file=sys.stderr, flush=True)


def rel(path):
    """`path` relative to the source tree when it is inside it, as reports show commands."""
    return os.path.relpath(path, ROOT) if path.startswith(ROOT) else path


def command_text(cmd):
    return " ".join(rel(c) for c in cmd)


def root_flags(bins, _known={}):
    """["--allow-root"] when run as root by a bench_server that knows the flag (builds since
    issue 9 refuse root workers without it; an older build compared against does not know it)."""
    if os.geteuid() != 0:
        return []
    if bins not in _known:
        out = subprocess.run([os.path.join(bins, "bench_server"), "--help"], check=False,
                             capture_output=True, text=True).stdout
        _known[bins] = ["--allow-root"] if "--allow-root" in out else []
    return _known[bins]


class Server:
    """One bench_server listening on 127.0.0.1, port 0, with its scoreboard named `prefix`
    and a number; a direct child of this script, so that wait4 gets the rusage of the
    master, which includes every worker and per-connection child it reaped."""

    counter = 0

    def __init__(self, bins, logdir, prefix, label, listen_flag, args, workers, pin=None,
                 wrapper=()):
        Server.counter += 1
        self.name = f"{prefix}{Server.counter}"
        self.label = label  # names the server in messages
        self.workers = workers  # worker slots to wait for at start
        self.cmd = ([] if pin is None else ["taskset", "-c", str(pin)]) + list(wrapper) + [
            os.path.join(bins, "bench_server"), listen_flag, "127.0.0.1:0", *args,
            "--stats", self.name, "--graceful-timeout", "5", *root_flags(bins)]
        self.top = os.path.join(bins, "prefork-top")
        self.log = os.path.join(logdir, self.name + ".err")
        self.proc = None
        self.port = None
        self.worker_pids = []
        self.status = None
        self.rusage = None
        self.segment_left = False

    def start(self, timeout=15.0):
        """Starts it, reads its port from its first `listening` line and waits until its
        scoreboard shows `workers` slots, all ready; RuntimeError when it does not."""
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL)
        LIVE[self.proc.pid] = self
        deadline = time.monotonic() + timeout
        fd, text = self.proc.stdout.fileno(), b""
        while b"\n" not in text:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RuntimeError(f"{self.label}: no 'listening' line within {timeout} s"
                                   + self.log_tail())
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"{self.label}: exited before listening" + self.log_tail())
            text += chunk
        line = text.decode().splitlines()[0].split()
        if len(line) != 3 or line[0] != "listening":
            raise RuntimeError(f"{self.label}: unexpected first line {text!r}")
        self.port = int(line[2].rsplit(":", 1)[1])
        while True:
            board = self.scoreboard()
            if board and len(board["workers"]) == self.workers and all(
                    w["state"] == "ready" for w in board["workers"]):
                self.worker_pids = [w["pid"] for w in board["workers"]]
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: workers not ready within {timeout} s: "
                                   f"{board}" + self.log_tail())
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label}: exited at start" + self.log_tail())
            time.sleep(0.02)

    def scoreboard(self):
        """prefork-top's JSON of the scoreboard, or None."""
        try:
            r = subprocess.run([self.top, "--json", "--once", self.name], capture_output=True,
                               text=True, timeout=10)
            return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None
        except (subprocess.TimeoutExpired, ValueError):
            return None

    def stop(self, timeout=15.0):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status. Sets
        segment_left when the master exited 0 (so it should have removed its scoreboard)
        and the segment is still there: a leak."""
        if self.proc is None or self.status is not None:
            return self.status
        pid = self.proc.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        killed = False
        while True:
            done, status, rusage = os.wait4(pid, os.WNOHANG)
            if done == pid:
                break
            if not killed and time.monotonic() > deadline:
                say(f"{self.label} ({self.name}) did not stop in {timeout} s: SIGKILL")
                os.kill(pid, signal.SIGKILL)
                killed = True
                deadline = time.monotonic() + timeout
            elif killed and time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: pid {pid} survives SIGKILL")
            time.sleep(0.005)
        self.proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        self.status = "killed (no SIGTERM exit)" if killed else self.proc.returncode
        self.rusage = rusage
        self.segment_left = self.status == 0 and os.path.exists(self.segment())
        self.proc.stdout.close()
        LIVE.pop(pid, None)
        return self.status

    def segment(self):
        return f"/dev/shm/{self.name}"

    def leak(self):
        """A problem to report when stop() found a leaked scoreboard segment, else None."""
        return (f"{self.label}: its scoreboard {self.segment()} was still there after it "
                "exited 0" if self.segment_left else None)

    def cpu(self):
        """User + system seconds of the stopped master and all it reaped, or None."""
        return None if self.rusage is None else self.rusage.ru_utime + self.rusage.ru_stime

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                lines = f.read().strip().splitlines()[-5:]
            return ("; server stderr: " + " | ".join(lines)) if lines else ""
        except OSError:
            return ""


def stop_all(prefix):
    """Stops every server still running and removes the segments named `prefix`*, saying
    which: those of killed servers, or leaks that the runs report."""
    for server in list(LIVE.values()):
        try:
            server.stop(timeout=5)
        except Exception as e:  # noqa: BLE001 - best effort at exit
            say(f"could not stop {server.name}: {e}")
    for path in glob.glob(f"/dev/shm/{prefix}*"):
        try:
            os.unlink(path)
            say(f"removed {path}, left by a server")
        except OSError:
            pass


def stop_all_at_exit(prefix):
    """stop_all(prefix) however the script ends: normally, by an exception, or by SIGTERM,
    SIGINT or SIGHUP."""
    def on_signal(signum, _frame):
        raise SystemExit(f"bench/{os.path.basename(sys.argv[0])}: stopped by signal {signum}")

    atexit.register(stop_all, prefix)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)


def start_client(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def finish_client(proc, cap_s):
    """(prefork-bench's JSON or None, a problem or None) once `proc` has ended; killed
    when it runs 60 s past its duration cap `cap_s`."""
    try:
        out, err = proc.communicate(timeout=cap_s + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None, f"prefork-bench did not finish within {cap_s + 60} s (killed)"
    try:
        data = json.loads(out)
    except ValueError:
        return None, f"prefork-bench exit {proc.returncode}, no JSON: {err.strip()[-300:]}"
    return data, None if proc.returncode == 0 else f"prefork-bench exit {proc.returncode}"


def run_client(cmd, cap_s):
    return finish_client(start_client(cmd), cap_s)
