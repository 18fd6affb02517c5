"""What a worker keeps resident after a burst of large messages (issue 10,
"buffers never shrink"): one upper_server worker, N connections that each
send one large frame to the --framed listener and read its reply, then sit
idle, then close; and N hostile ones that stall mid-frame or never read
their replies. The worker's RSS is read from /proc/PID/status (VmRSS) after
each phase has settled (it stops changing), not from the scoreboard, whose
value is at most a heartbeat (1 s) old."""

import os
import select
import socket
import struct
import subprocess
import time

MiB = 1 << 20


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def settled_rss(pid, timeout=5.0):
    """The worker's RSS once two reads 200 ms apart agree (or at the timeout),
    after two heartbeats (the worker trims its heap at most once a second)."""
    time.sleep(2.5)
    last = rss_bytes(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_bytes(pid)
        if now == last:
            return now
        last = now
    return last


class Server:
    """upper_server with one worker in `model`, its framed listener's port read
    from its `listening` line; ended by pid."""

    def __init__(self, exe, model, max_message, extra=()):
        name = f"membench-{os.getpid()}"
        cmd = [exe, "--framed", "127.0.0.1:0", "--workers", "1", "--stats", name,
               "--model", model, "--max-message", str(max_message), *extra]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.port = None
        deadline = time.monotonic() + 15
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            words = line.split()
            if len(words) >= 3 and words[0] == "listening" and words[1] == "framed":
                self.port = int(words[2].rsplit(":", 1)[1])
        if self.port is None:
            self.stop()
            raise RuntimeError("the server did not listen")
        self.worker = self._worker_pid(deadline)

    def _worker_pid(self, deadline):
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    kids = [int(p) for p in f.read().split()]
                if kids:
                    return kids[0]
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("no worker")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def frame(size):
    return struct.pack(">I", size) + b"a" * size


def read_exactly(sock, n):
    got = 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise RuntimeError("closed early")
        got += len(chunk)


def burst(port, connections, size):
    """Each connection sends one frame of `size` bytes and reads its reply;
    all stay open (idle) and are returned."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    data = frame(size)
    for s in socks:
        s.sendall(data)
        read_exactly(s, 4 + size)
    return socks


def stalled(port, connections, size):
    """Each connection sends all of a `size` frame but its last byte."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    data = frame(size)[:-1]
    for s in socks:
        s.sendall(data)
    return socks


def never_reading(port, connections, size):
    """Each connection sends frames of `size` until the server stops taking
    them (its replies are never read)."""
    socks = []
    data = frame(size)
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        sent = 0
        while True:
            try:
                sent += s.send(data[sent % len(data):])
            except BlockingIOError:
                if not select.select([], [s], [], 0.5)[1]:
                    break
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def run(exe, model, connections, size, max_message):
    server = Server(exe, model, max_message)
    out = {"model": model, "command": " ".join(server.cmd[1:]).replace(str(server.cmd[0]), "")}
    try:
        pid = server.worker
        # One small request first: the worker's start-up allocations are done.
        close_all(burst(server.port, 1, 16))
        out["baseline"] = settled_rss(pid)
        socks = burst(server.port, connections, size)
        out["idle_after_burst"] = settled_rss(pid)
        close_all(socks)
        out["after_close"] = settled_rss(pid)
        socks = stalled(server.port, connections, size)
        out["stalled"] = settled_rss(pid)
        close_all(socks)
        out["after_stalled"] = settled_rss(pid)
        socks = never_reading(server.port, connections, size)
        out["never_reading"] = settled_rss(pid)
        close_all(socks)
        out["after_never_reading"] = settled_rss(pid)
    finally:
        server.stop()
    return out
