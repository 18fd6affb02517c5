"""What the benchmark commands (bench/models, bench/spawn, bench/overhead)
share: the description of the machine a result was measured on, and how
busy that machine was meanwhile."""

import datetime
import os
import platform
import re
import subprocess

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
