#!/usr/bin/env python3
"""Starts upper_server the way systemd does, and checks it behaves as a Type=notify service.

    systemd_activation_test.py UPPER_SERVER fork|spawn

Like systemd for a .socket unit, this parent binds the sockets itself (127.0.0.1, port 0),
forks, and in the child sets LISTEN_FDS, LISTEN_PID (the child's own pid: the one that
execs) and LISTEN_FDNAMES, moves the sockets to descriptors 3, 4, ... and execs the server
with NOTIFY_SOCKET pointing at an abstract datagram socket this parent reads. Cases:

- named sockets (FileDescriptorName=framed / udp): READY=1 arrives, the server announces and
  serves framed TCP and UDP on the inherited ports, its copies are close-on-exec,
  STOPPING=1 arrives at SIGTERM, exit status 0, no /dev/shm segment left;
- unnamed sockets (systemd names them after the unit): matched in the order of the flags;
- --accept reuseport: one inherited set with SO_REUSEPORT, the others bound beside it; and
  refused, clearly, without SO_REUSEPORT;
- a UDP socket where --framed is configured: exit status 1 and one line naming both;
- reload and upgrade: SIGHUP brings RELOADING=1, then READY=1 once the workers are
  replaced; SIGUSR2 brings MAINPID=<new master> and READY=1 from the new master, which
  serves the same sockets while the old one exits 0.

Standard library only. Every wait is for a condition, with a deadline; every server is
killed and reaped even when a check fails.
"""
import ctypes
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import time

SERVER = sys.argv[1]
MODE = sys.argv[2] if len(sys.argv) > 2 else "fork"
TIMEOUT = 20.0
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)
    return condition


def wait_for(predicate, timeout=TIMEOUT, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def bind(kind, reuseport=False):
    sock = socket.socket(socket.AF_INET, kind)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    return sock


class Service:
    """One server exec'd with inherited sockets and a NOTIFY_SOCKET, as systemd starts it."""

    counter = 0

    def __init__(self, sockets, names, flags):
        Service.counter += 1
        self.stats = f"prefork_test_systemd_{os.getpid()}_{Service.counter}"
        self.work = tempfile.TemporaryDirectory(prefix="prefork-systemd-")
        self.out_path = os.path.join(self.work.name, "out")
        self.err_path = os.path.join(self.work.name, "err")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_name = f"@prefork_test_notify_{os.getpid()}_{Service.counter}"
        self.notify.bind("\0" + self.notify_name[1:])
        args = [SERVER, "--start", MODE, "--stats", self.stats, "--allow-root",
                "--graceful-timeout", "5", *flags]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_"))}
        env["NOTIFY_SOCKET"] = self.notify_name
        parent = os.getpid()
        fds = [s.fileno() for s in sockets]
        out = os.open(self.out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(self.err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.pid = os.fork()
        if self.pid == 0:  # the child: exec, or _exit; never back into this script
            try:
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
                if os.getppid() != parent:
                    os._exit(127)
                os.dup2(out, 1)
                os.dup2(err, 2)
                # Above the target range first, then onto 3, 4, ...: inheritable.
                moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + len(fds)) for fd in fds]
                for i, fd in enumerate(moved):
                    os.dup2(fd, 3 + i, inheritable=True)
                os.closerange(3 + len(fds), 65536)
                env["LISTEN_FDS"] = str(len(fds))
                env["LISTEN_PID"] = str(os.getpid())
                if names is not None:
                    env["LISTEN_FDNAMES"] = ":".join(names)
                os.execve(SERVER, args, env)
            finally:
                os._exit(127)
        os.close(out)
        os.close(err)
        self.status = None

    def text(self, which):
        with open(self.out_path if which == "out" else self.err_path) as f:
            return f.read()

    def listening(self, count):
        def lines():
            found = [line.split() for line in self.text("out").splitlines()
                     if line.startswith("listening ")]
            return found if len(found) >= count or self.exited() else None
        return wait_for(lines) or []

    def next_notification(self, timeout=TIMEOUT):
        ready, _, _ = select.select([self.notify], [], [], timeout)
        return self.notify.recv(4096).decode() if ready else None

    def notification_with(self, key, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.next_notification(max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            if key in message.split("\n"):
                return message
        return None

    def exited(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status is not None

    def wait_exit(self, timeout=TIMEOUT):
        wait_for(self.exited, timeout)
        return self.status

    def close(self):
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        segment = "/dev/shm/" + self.stats
        if os.path.exists(segment):
            failures.append(f"segment {segment} left behind")
            os.unlink(segment)
        self.notify.close()
        self.work.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if failures or exc[0] is not None:
            print(f"--- server stdout ---\n{self.text('out')}--- server stderr ---\n"
                  f"{self.text('err')}", flush=True)
        self.close()


def framed_request(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(struct.pack(">I", len(payload)) + payload)
        reply = b""
        while len(reply) < 4 or len(reply) < 4 + struct.unpack(">I", reply[:4])[0]:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply[4:]


def udp_request(port, payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(payload, ("127.0.0.1", port))
        return sock.recvfrom(65536)[0]


def serves_on(service, framed, udp, label):
    lines = service.listening(2)
    check([line[1:] for line in lines] == [["framed", f"127.0.0.1:{framed}"],
                                           ["udp", f"127.0.0.1:{udp}"]],
          f"{label}: announces the inherited ports {framed}, {udp} (got {lines})")
    check(framed_request(framed, b"hello framed") == b"HELLO FRAMED", f"{label}: serves framed TCP")
    check(udp_request(udp, b"hello udp") == b"HELLO UDP", f"{label}: serves UDP")


def named_sockets():
    tcp, udp = bind(socket.SOCK_STREAM), bind(socket.SOCK_DGRAM)
    framed_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    # The flags give the unit's addresses; the sockets come in the other order.
    flags = ["--workers", "2", "--udp", f"127.0.0.1:{udp_port}", "--framed",
             f"127.0.0.1:{framed_port}"]
    with Service([tcp, udp], ["framed", "udp"], flags) as service:
        ready = service.notification_with("READY=1")
        check(ready is not None, f"named: READY=1 arrives ({ready!r})")
        lines = service.listening(2)
        check(sorted(line[1] for line in lines) == ["framed", "udp"], "named: two listeners")
        serves_on_any_order(service, framed_port, udp_port)
        fdinfo = open(f"/proc/{service.pid}/fdinfo/3").read()
        flags_field = int(next(l.split()[1] for l in fdinfo.splitlines()
                               if l.startswith("flags:")), 8)
        check(flags_field & 0o2000000 != 0, "named: the master's inherited fd 3 is close-on-exec")
        environ = open(f"/proc/{service.pid}/environ", "rb").read()
        check(b"LISTEN_PID=" + str(service.pid).encode() in environ,
              "named: the test really passed LISTEN_PID = the exec'd pid")
        if MODE == "spawn":  # only the master speaks for the service
            children = open(f"/proc/{service.pid}/task/{service.pid}/children").read().split()
            check(len(children) == 2 and all(
                b"NOTIFY_SOCKET=" not in open(f"/proc/{c}/environ", "rb").read()
                for c in children), f"named: spawned workers {children} have no NOTIFY_SOCKET")
        os.kill(service.pid, signal.SIGTERM)
        check(service.notification_with("STOPPING=1") is not None, "named: STOPPING=1 at SIGTERM")
        check(service.wait_exit() == 0, f"named: exit status 0 (got {service.status})")
    tcp.close()
    udp.close()


def serves_on_any_order(service, framed_port, udp_port):
    ports = {line[1]: line[2] for line in service.listening(2)}
    check(ports.get("framed") == f"127.0.0.1:{framed_port}" and
          ports.get("udp") == f"127.0.0.1:{udp_port}",
          f"named: announces the inherited ports (got {ports})")
    check(framed_request(framed_port, b"hello framed") == b"HELLO FRAMED",
          "named: serves framed TCP on the inherited socket")
    check(udp_request(udp_port, b"hello udp") == b"HELLO UDP",
          "named: serves UDP on the inherited socket")


def unnamed_sockets_by_order():
    tcp, udp = bind(socket.SOCK_STREAM), bind(socket.SOCK_DGRAM)
    flags = ["--workers", "1", "--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0"]
    with Service([tcp, udp], ["upper.socket", "upper.socket"], flags) as service:
        check(service.notification_with("READY=1") is not None, "by order: READY=1 arrives")
        serves_on(service, tcp.getsockname()[1], udp.getsockname()[1], "by order")
        os.kill(service.pid, signal.SIGTERM)
        check(service.wait_exit() == 0, f"by order: exit status 0 (got {service.status})")
    tcp.close()
    udp.close()


def reuseport():
    tcp, udp = bind(socket.SOCK_STREAM, True), bind(socket.SOCK_DGRAM, True)
    flags = ["--workers", "3", "--model", "prefork", "--accept", "reuseport",
             "--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0"]
    with Service([tcp, udp], ["framed", "udp"], flags) as service:
        check(service.notification_with("READY=1") is not None, "reuseport: READY=1 arrives")
        serves_on(service, tcp.getsockname()[1], udp.getsockname()[1], "reuseport")
        os.kill(service.pid, signal.SIGTERM)
        check(service.wait_exit() == 0, f"reuseport: exit status 0 (got {service.status})")
    tcp.close()
    udp.close()
    tcp, udp = bind(socket.SOCK_STREAM), bind(socket.SOCK_DGRAM)
    with Service([tcp, udp], ["framed", "udp"], flags) as service:
        check(service.wait_exit() == 1, f"reuseport without SO_REUSEPORT: exit 1 ({service.status})")
        check("ReusePort=yes" in service.text("err"), "reuseport without SO_REUSEPORT: says why")
    tcp.close()
    udp.close()


def wrong_kind():
    udp = bind(socket.SOCK_DGRAM)
    with Service([udp], None, ["--workers", "1", "--framed", "127.0.0.1:0"]) as service:
        check(service.wait_exit() == 1, f"wrong kind: exit status 1 (got {service.status})")
        errors = service.text("err").strip().splitlines()
        check(len(errors) == 1 and "inherited fd 3 is a datagram socket" in errors[0]
              and "--framed" in errors[0], f"wrong kind: one line naming both ({errors})")
        check(service.text("out") == "", "wrong kind: nothing announced")
    udp.close()


def reload_and_upgrade():
    # The new master is the old one's child, then (the old one gone) ours.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    tcp, udp = bind(socket.SOCK_STREAM), bind(socket.SOCK_DGRAM)
    framed_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    flags = ["--workers", "2", "--framed", f"127.0.0.1:{framed_port}", "--udp",
             f"127.0.0.1:{udp_port}"]
    new_master = None
    with Service([tcp, udp], ["framed", "udp"], flags) as service:
        try:
            check(service.notification_with("READY=1") is not None, "reload: READY=1 at start")
            os.kill(service.pid, signal.SIGHUP)
            check(service.notification_with("RELOADING=1") is not None,
                  "reload: RELOADING=1 at SIGHUP")
            check(service.notification_with("READY=1") is not None,
                  "reload: READY=1 once the workers are replaced")
            os.kill(service.pid, signal.SIGUSR2)
            message = service.notification_with("READY=1")
            fields = dict(line.split("=", 1) for line in (message or "").split("\n") if "=" in line)
            new_master = int(fields.get("MAINPID", "0"))
            check(new_master not in (0, service.pid),
                  f"upgrade: READY=1 comes with MAINPID=<new master> ({message!r})")
            check(service.wait_exit() == 0, f"upgrade: old master exits 0 (got {service.status})")
            check(framed_request(framed_port, b"after") == b"AFTER", "upgrade: framed served")
            check(udp_request(udp_port, b"after") == b"AFTER", "upgrade: UDP served")
        finally:
            if new_master:
                os.kill(new_master, signal.SIGTERM)
                deadline = time.monotonic() + TIMEOUT
                while time.monotonic() < deadline:
                    pid, _ = os.waitpid(new_master, os.WNOHANG)
                    if pid == new_master:
                        break
                    time.sleep(0.02)
                else:
                    os.kill(new_master, signal.SIGKILL)
                    os.waitpid(new_master, 0)
    tcp.close()
    udp.close()


for case in (named_sockets, unnamed_sockets_by_order, reuseport, wrong_kind, reload_and_upgrade):
    try:
        case()
    except Exception as e:  # a failed case must not hide the others
        check(False, f"{case.__name__}: {type(e).__name__}: {e}")

print(f"{len(failures)} failure(s)" if failures else "all passed", flush=True)
sys.exit(1 if failures else 0)
