"""What the harness reads from /proc: a process's parent, group, session, state
and CPU time; its socket inodes; the kernel's TCP socket table; the processes
of a server's sessions and groups. Parsing is separate from reading, so the
unit test (tests/bench/faults_test.py) feeds it sample text."""

import os
import socket
import struct
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat the harness uses."""
    pid: int
    state: str  # R, S, D, T (stopped), Z (zombie), ...
    ppid: int
    pgid: int
    sid: int
    cpu_s: float  # user + system time of the process itself


def parse_stat(text):
    """A ProcStat from the text of /proc/PID/stat. The command name (field 2) is in
    parentheses and may hold spaces or parentheses itself: split after the last ')'."""
    pid = int(text[:text.index("(")])
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15
    return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]),
                    sid=int(rest[3]), cpu_s=(int(rest[11]) + int(rest[12])) / CLOCK_TICKS)


def read_stat(pid, proc="/proc"):
    """ProcStat of `pid`, or None when it does not exist (any more)."""
    try:
        with open(f"{proc}/{pid}/stat") as f:
            return parse_stat(f.read())
    except (OSError, ValueError, IndexError):
        return None


def all_stopped(pid, proc="/proc"):
    """True when every thread of `pid` is stopped (state T); None when `pid` is gone or a
    zombie. A SIGSTOP takes effect on the way back to user space: a thread inside a
    system call (an accept4() under way) finishes it first."""
    try:
        tasks = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return None
    states = [s.state for s in (read_stat(t, f"{proc}/{pid}/task") for t in tasks) if s]
    if not states or "Z" in states:
        return None
    return all(state in ("T", "t") for state in states)


def all_stats(proc="/proc"):
    """ProcStat of every process now."""
    out = []
    for name in os.listdir(proc):
        if name.isdigit():
            s = read_stat(int(name), proc)
            if s:
                out.append(s)
    return out


def processes_of(pids, groups, stats=None):
    """The processes that belong to a server: in one of the sessions or process groups
    `groups`, or a child of one of `pids`."""
    stats = all_stats() if stats is None else stats
    return [s for s in stats if s.pgid in groups or s.sid in groups or s.ppid in pids]


def socket_inodes(pid, proc="/proc"):
    """The inodes of the sockets `pid` holds (/proc/PID/fd/N -> socket:[INODE])."""
    out = set()
    try:
        names = os.listdir(f"{proc}/{pid}/fd")
    except OSError:
        return out
    for name in names:
        try:
            target = os.readlink(f"{proc}/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def descriptor_count(pid, proc="/proc"):
    try:
        return len(os.listdir(f"{proc}/{pid}/fd"))
    except OSError:
        return None


@dataclass(frozen=True)
class TcpEntry:
    """One line of /proc/net/tcp or tcp6."""
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int
    state: int  # 1 ESTABLISHED, 8 CLOSE_WAIT, 10 LISTEN, ...
    inode: int


def decode_address(text):
    """(host, port) from the kernel's "HEX:PORT" form: the address is in the host's byte
    order, 32-bit word by word (4 bytes for IPv4, 16 for IPv6); the port is big-endian."""
    hexaddr, hexport = text.split(":")
    raw = bytes.fromhex(hexaddr)
    words = b"".join(struct.pack("=I", struct.unpack(">I", raw[i:i + 4])[0])
                     for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    host = socket.inet_ntop(family, words)
    if host.startswith("::ffff:") and "." in host:  # an IPv4 peer of an IPv6 socket
        host = host[7:]
    return host, int(hexport, 16)


def parse_net_tcp(text, inodes=None):
    """TcpEntry for each socket line of /proc/net/tcp or /proc/net/tcp6; only those of
    `inodes` when given (a busy machine has thousands of lines, mostly TIME_WAIT)."""
    out = []
    for line in text.splitlines()[1:] if inodes is None else lines_naming(text, inodes):
        f = line.split()
        if len(f) < 10 or (inodes is not None and int(f[9]) not in inodes):
            continue
        lh, lp = decode_address(f[1])
        rh, rp = decode_address(f[2])
        out.append(TcpEntry(lh, lp, rh, rp, int(f[3], 16), int(f[9])))
    return out


def lines_naming(text, inodes):
    """The lines of `text` in which one of `inodes` stands as a word (a quick filter: the
    caller checks the field)."""
    out = []
    for inode in inodes:
        needle = f" {inode} "
        at = text.find(needle)
        while at >= 0:
            begin = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            out.append(text[begin:end if end >= 0 else len(text)])
            at = text.find(needle, at + 1)
    return out


def read_net_tcp(proc="/proc", inodes=None):
    out = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/net/{name}") as f:
                out += parse_net_tcp(f.read(), inodes)
        except OSError:
            pass
    return out


def client_ports(inodes, entries, server_port):
    """The client-side ports of the connections to `server_port` whose server-side
    socket is one of `inodes`: the connections a process holds, as its clients see them."""
    return {e.remote_port for e in entries
            if e.inode in inodes and e.local_port == server_port and e.remote_port}


def held_client_ports(pids, server_port):
    """client_ports() of every socket that one of `pids` holds now."""
    inodes = set()
    for pid in pids:
        inodes |= socket_inodes(pid)
    return client_ports(inodes, read_net_tcp(inodes=inodes), server_port)
