#!/usr/bin/env python3
"""Runs the teaching guide's commands and checks their output's shape.

The guide (docs/guide/*.md) shows shell sessions in ```console blocks: a line
"$ command" (continued by a trailing backslash) and the lines it prints. This
script runs each command from the repository's root, as a student would, and
compares what it printed with what the guide shows, by shape: every number is
normalised (pids, times, counts vary from run to run; the lines may not), runs
of blanks are one blank, a line "..." stands for any number of lines and a
line ending in " ..." for any line that begins as it does.
A command that ends with a non-zero status shows it as a last line "[exit N]".

Servers run in the background as in a terminal: "$ command &" starts job %1,
%2, ...; the lines under it are what the job prints as it starts (waited for,
in any order, since a master and its workers write at once). A fenced block
after an HTML comment "<!-- output of %N -->" is what job N prints next (the
student reads it in the terminal); "$ wait %N" shows what it prints until it
exits. "kill [-SIG] %N...", "wait %N...", "$(jobs -p %N)" and "$!" work as in bash. The guide
shows the checkout as ~/prefork: so is the repository's path in the output.

Each chapter runs in namespaces of its own (network: the guide's fixed ports
cannot collide with other tests; mount: a private /dev/shm for the
scoreboards; pid: every process it started ends with it), as root, or in a
user namespace otherwise. --update writes the real output into the guide for
every command whose output does not match (kept: blocks that match);
--update-all for every command, from one run, so that pids agree.

  usage: guide_check.py [--build-dir DIR] [--update | --update-all] CHAPTER.md...
         guide_check.py --links GUIDE_DIR   (links and diagrams are current)
"""

import argparse
import hashlib
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMAND_TIMEOUT_S = 120  # the longest command (bench/models --lesson) takes under a minute
JOB_WAIT_S = 30          # for a background job's lines: start-up and shutdown
FENCE = re.compile(r"^```(\w*)\s*$")
JOB_OUTPUT = re.compile(r"^<!--\s*output of %(\d+)\s*-->\s*$")
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")


# --- shape -----------------------------------------------------------------

NUMBER = re.compile(r"0x[0-9a-fA-F]+|[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def shape(line):
    """A line with its numbers as '#' and its runs of blanks as one."""
    return " ".join(NUMBER.sub("#", line).split())


def same(expected_shape, actual_shape):
    """A line ending in " ..." stands for any line that begins as it does."""
    if expected_shape.endswith(" ..."):
        return actual_shape.startswith(expected_shape[:-4])
    return expected_shape == actual_shape


def matches(expected, actual):
    """Whether the lines match by shape; '...' in expected is any lines."""
    exp = [e if e.strip() == "..." else shape(e) for e in expected]
    act = [shape(a) for a in actual]
    memo = {}

    def at(i, j):
        if (i, j) not in memo:
            if i == len(exp):
                memo[i, j] = j == len(act)
            elif exp[i].strip() == "...":
                memo[i, j] = at(i + 1, j) or (j < len(act) and at(i, j + 1))
            else:
                memo[i, j] = j < len(act) and same(exp[i], act[j]) and at(i + 1, j + 1)
        return memo[i, j]

    return at(0, 0)


def unordered_match(expected, actual):
    """Job output: every expected line, in any order; others only under '...'."""
    loose = any(e.strip() == "..." for e in expected)
    wanted = [shape(e) for e in expected if e.strip() != "..."]
    rest = [shape(a) for a in actual]
    for w in wanted:
        found = next((k for k, r in enumerate(rest) if same(w, r)), None)
        if found is None:
            return False
        del rest[found]
    return loose or not rest


# --- the guide's blocks ----------------------------------------------------

class Step:
    """One command and the output the guide shows for it (kind 'command'),
    or the lines a background job prints next (kind 'job')."""

    def __init__(self, kind, text, expected, lineno, job=None):
        self.kind, self.text, self.expected, self.lineno, self.job = kind, text, expected, lineno, job
        self.output_span = None  # (first, end) line indexes of the shown output in the file


def parse(lines):
    steps, i, pending_job = [], 0, None
    while i < len(lines):
        m = JOB_OUTPUT.match(lines[i])
        if m:
            pending_job = int(m.group(1))
            i += 1
            continue
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = list(range(i + 1, end))
        if pending_job is not None:
            step = Step("job", None, [lines[k] for k in body], i + 1, pending_job)
            step.output_span = (i + 1, end)
            steps.append(step)
        elif fence.group(1) == "console":
            steps += parse_session(lines, body)
        pending_job = None
        i = end + 1
    return steps


def parse_session(lines, body):
    steps, k = [], 0
    while k < len(body):
        line = lines[body[k]]
        if not line.startswith("$ "):
            raise SystemExit(f"line {body[k] + 1}: output before any command in a console block")
        start, text = body[k], line[2:]
        while text.endswith("\\") and k + 1 < len(body):
            k += 1
            text = text[:-1] + "\n" + lines[body[k]]
        k += 1
        first = k
        while k < len(body) and not lines[body[k]].startswith("$ "):
            k += 1
        step = Step("command", text, [lines[j] for j in body[first:k]], start + 1)
        step.output_span = (body[0] + first, body[0] + k)  # body: consecutive line indexes
        steps.append(step)
    return steps


# --- running ---------------------------------------------------------------

class Job:
    """A background command, in a process group of its own as a shell job."""

    def __init__(self, command, env):
        self.reaped = False
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace",
                                     start_new_session=True)
        self.lines, self.seen, self.lock = [], 0, threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def ended(self):
        return self.proc.poll() is not None and not self.reader.is_alive()

    def wait_for(self, expected, shown, until_exit=False):
        """The job's next lines once they match expected as shown (or, with
        until_exit, once it has exited), and whether time ran out first."""
        deadline = time.monotonic() + JOB_WAIT_S
        while True:
            with self.lock:
                got = self.lines[self.seen:]
                done = self.ended() or (not until_exit and unordered_match(expected, shown(got)))
                late = not done and time.monotonic() > deadline
                if done or late:
                    self.seen = len(self.lines)
                    return got, late
            time.sleep(0.02)

    def signal(self, number):
        """As bash's kill %N: the job's whole process group."""
        try:
            os.killpg(self.proc.pid, number)
        except ProcessLookupError:
            pass

    def stop(self):
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()


class Session:
    def __init__(self, build_dir):
        self.jobs, self.finished, self.last = {}, [], None
        # A developer's PREFORK_* settings (log level, format) must not change the output.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFORK_")}
        self.env = dict(env, LC_ALL="C.UTF-8", COLUMNS="100", TERM="dumb",
                        PYTHONDONTWRITEBYTECODE="1")
        self.build_dir = build_dir

    def expand(self, text):
        def pid(m):
            return str(self.job(int(m.group(1))).proc.pid)
        text = re.sub(r"\$\(jobs -p %(\d+)\)", pid, text)
        if self.jobs:
            text = text.replace("$!", str(self.last.proc.pid))
        if self.build_dir != os.path.join(ROOT, "build"):
            text = re.sub(r"(?<![\w/.-])build/", self.build_dir.rstrip("/") + "/", text)
        return text

    def job(self, n):
        if n not in self.jobs or self.jobs[n].reaped:
            raise SystemExit(f"no job %{n} running at this point")
        return self.jobs[n]

    def shown(self, lines):
        """Output as the guide shows it: the checkout is ~/prefork."""
        out = []
        for line in lines:
            if self.build_dir != os.path.join(ROOT, "build"):
                line = line.replace(self.build_dir.rstrip("/") + "/", "~/prefork/build/")
            out.append(line.replace(ROOT + "/", "~/prefork/"))
        return out

    def run(self, step):
        """What the step printed, for comparison with step.expected."""
        got, timed_out = self.execute(step)
        return self.shown(got), timed_out

    def execute(self, step):
        if step.kind == "job":
            return self.job(step.job).wait_for(step.expected, self.shown)[0], False
        text = step.text.strip()
        if text.endswith("&") and not text.endswith("&&"):
            if not [e for e in step.expected if e.strip() != "..."]:
                return ["(a background job shows its first lines: the check waits for them)"], True
            # bash's numbering: one more than the highest job still in its table
            n = max((k for k, j in self.jobs.items() if not j.reaped), default=0) + 1
            command = self.expand(text[:-1].strip())
            simple = not re.search(r"[|;&<>()`$]", command)
            if n in self.jobs:
                self.finished.append(self.jobs[n])
            self.jobs[n] = self.last = Job(("exec " if simple else "") + command, self.env)
            return self.last.wait_for(step.expected, self.shown)[0], False
        m = re.fullmatch(r"kill(?: -(\w+))?((?: %\d+)+)", text)
        if m:
            sig = m.group(1) or "TERM"
            sig = int(sig) if sig.isdigit() else getattr(signal, "SIG" + sig.removeprefix("SIG"))
            for n in re.findall(r"%(\d+)", m.group(2)):
                self.job(int(n)).signal(sig)
            return [], False
        m = re.fullmatch(r"wait((?: %\d+)+)", text)
        if m:
            got, late = [], False
            for n in re.findall(r"%(\d+)", m.group(1)):
                job = self.job(int(n))
                lines, timed_out = job.wait_for(step.expected, self.shown, until_exit=True)
                got, late = got + lines, late or timed_out
                code, job.reaped = job.proc.returncode, True
                if code not in (0, None):
                    got.append(f"[exit {128 - code if code < 0 else code}]")
            return got, late
        try:
            done = subprocess.run(["bash", "-c", self.expand(text)], cwd=ROOT, env=self.env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace",
                                  timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"")
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            return out.splitlines() + [f"(timed out after {COMMAND_TIMEOUT_S} s)"], True
        got = done.stdout.splitlines()
        if done.returncode != 0:
            got.append(f"[exit {done.returncode}]")
        return got, False

    def close(self):
        for job in self.finished + list(self.jobs.values()):
            job.stop()


def concerns_job(step):
    """A job's lines come from several processes at once: any order."""
    text = (step.text or "").strip()
    return step.kind == "job" or (text.endswith("&") and not text.endswith("&&")) or \
        re.fullmatch(r"wait( %\d+)+", text) is not None


def merged(expected, got):
    """The real lines, except where the guide has a prefix wildcard
    ("machine     2 CPUs, ...") that matches one: that line stays."""
    wild = [e for e in expected if e.endswith(" ...")]
    out = []
    for g in got:
        keep = next((e for e in wild if same(shape(e), shape(g))), None)
        if keep is not None:
            wild.remove(keep)
        out.append(keep if keep is not None else g)
    return out


def check_chapter(path, build_dir, update):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    steps = parse(lines)
    if not steps:
        print(f"{path}: no commands")
        return 1
    session, failures, replaced = Session(build_dir), 0, {}
    try:
        for step in steps:
            what = step.text.splitlines()[0] if step.text else f"output of %{step.job}"
            start = time.monotonic()
            got, timed_out = session.run(step)
            ok = not timed_out and (unordered_match if concerns_job(step) else matches)(
                step.expected, got)
            print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(path)}:{step.lineno}: "
                  f"{what}  ({time.monotonic() - start:.1f} s)", flush=True)
            if not ok:
                failures += 1
                print("  expected (shape):\n" + "".join(f"    | {e}\n" for e in step.expected)
                      + "  got:\n" + "".join(f"    | {g}\n" for g in got), flush=True)
            if update and not timed_out and (not ok or update == "all"):
                replaced[step.output_span] = merged(step.expected, got)
    finally:
        session.close()
    if update and replaced:
        for (first, end), got in sorted(replaced.items(), reverse=True):
            lines[first:end] = got
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        print(f"{path}: wrote the real output of {len(replaced)} step(s)")
        return 0
    print(f"{path}: {len(steps) - failures}/{len(steps)} steps as shown")
    return 1 if failures else 0


# --- links and diagrams ----------------------------------------------------

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
EXCERPT = re.compile(r"^<!--\s*excerpt of (\S+)\s*-->\s*$")


def excerpt_problems(guide_dir, name, lines):
    """A code block after "<!-- excerpt of FILE -->" shows FILE's lines: each
    line of it (but a "// ..." elision) is one of the file's, blanks aside."""
    problems = []
    for n, line in enumerate(lines):
        m = EXCERPT.match(line)
        if not m:
            continue
        path = os.path.normpath(os.path.join(guide_dir, m.group(1)))
        if not os.path.exists(path):
            problems.append(f"{name}:{n + 1}: excerpt of a missing file: {m.group(1)}")
            continue
        with open(path, encoding="utf-8") as f:
            source = {" ".join(s.split()) for s in f}
        k = n + 2  # past the fence
        while k < len(lines) and not lines[k].startswith("```"):
            shown = " ".join(lines[k].split())
            if shown and not shown.startswith("// ...") and shown not in source:
                problems.append(f"{name}:{k + 1}: not in {m.group(1)}: {lines[k].strip()}")
            k += 1
    return problems


def check_links(guide_dir):
    """Every relative link in the guide names a file that exists, every
    excerpt is still the code's, and every diagram's SVG was rendered from
    its committed source as it is now."""
    problems = []
    for name in sorted(os.listdir(guide_dir)):
        if not name.endswith(".md"):
            continue
        with open(os.path.join(guide_dir, name), encoding="utf-8") as f:
            text = f.read().split("\n")
        problems += excerpt_problems(guide_dir, name, text)
        for n, line in enumerate(text, 1):
            for target in LINK.findall(line):
                if "://" in target:
                    continue
                if not os.path.exists(os.path.normpath(os.path.join(guide_dir, target))):
                    problems.append(f"{name}:{n}: link to a missing file: {target}")
    diagrams = os.path.join(guide_dir, "diagrams")
    for name in sorted(os.listdir(diagrams)) if os.path.isdir(diagrams) else []:
        if not name.endswith(".dot"):
            continue
        with open(os.path.join(diagrams, name), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        svg = os.path.join(diagrams, name[:-4] + ".svg")
        if not os.path.exists(svg):
            problems.append(f"diagrams/{name}: no SVG (run docs/guide/diagrams/render.sh)")
            continue
        with open(svg, encoding="utf-8") as f:
            if f"source sha256 {digest}" not in f.read():
                problems.append(f"diagrams/{name}: its SVG is older than the source "
                                "(run docs/guide/diagrams/render.sh)")
    for p in problems:
        print("FAIL " + p)
    print(f"{guide_dir}: links and diagrams: {'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


# --- namespaces ------------------------------------------------------------

def loopback_up():
    """ip link set lo up, without iproute2: SIOCSIFFLAGS on 'lo'."""
    import fcntl
    import socket
    import struct
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, siocgifflags, ifreq))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def enter_namespaces(argv):
    """Runs this script again inside new network, mount and pid namespaces."""
    ns = ["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if os.geteuid() != 0:
        ns.insert(0, "--map-root-user")
    # bash stays pid 1 of the namespace: it reaps what is orphaned there.
    inner = ("mount -t tmpfs -o mode=1777 tmpfs /dev/shm && "
             f"{shlex.quote(sys.executable)} -B {shlex.join([os.path.abspath(__file__)] + argv)}"
             " --inside; exit $?")
    try:
        return subprocess.call(["unshare"] + ns + ["bash", "-c", inner])
    except FileNotFoundError:
        print("guide_check: unshare (util-linux) is missing", file=sys.stderr)
        return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="docs/guide/NN-*.md")
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--update", action="store_const", const="mismatched",
                        help="write the real output where it does not match")
    parser.add_argument("--update-all", dest="update", action="store_const", const="all",
                        help="write the real output of every step, from this one run "
                        "(prefix wildcards kept)")
    parser.add_argument("--links", metavar="GUIDE_DIR", help="check links and diagrams only")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.links:
        return check_links(args.links)
    if not args.chapters:
        parser.error("no chapter given")
    if not args.inside:
        return enter_namespaces(sys.argv[1:])
    loopback_up()
    # A crash the guide shows (SIGSEGV) leaves no core file in the checkout.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    build_dir = os.path.abspath(args.build_dir)
    return max(check_chapter(os.path.abspath(c), build_dir, args.update) for c in args.chapters)


if __name__ == "__main__":
    sys.exit(main())
