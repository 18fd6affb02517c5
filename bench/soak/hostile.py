"""Hostile clients for the soak: each kind a few threads, each thread one
connection at a time that misbehaves until the server closes it (or a cap),
then reconnects. Every loop ends at `stop`, at its deadline, or after
max_connections; every socket call has a timeout. Loopback only.

  idle        connects and says nothing (--idle-timeout closes it)
  trickle     a frame whose bytes come one a second: slowloris (--read-timeout)
  never_read  sends frames with big replies and never reads (--write-timeout)
  oversized   a header over --max-message (closed at once: limit_exceeded)
  garbage     random bytes (a nonsense header: oversized, or a frame never finished)
  reset       half a frame, then an RST (SO_LINGER 0)"""

import os
import select
import socket
import struct
import threading
import time

HEADER = struct.Struct("!I")
KINDS = ("idle", "trickle", "never_read", "oversized", "garbage", "reset")


class Tally:
    """One kind's figures, summed over its threads (each adds under the lock)."""

    FIELDS = ("connections", "closed_by_server", "closed_by_client", "refused", "errors")

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, field, n=1):
        with self.lock:
            self.counts[field] += n

    def snapshot(self):
        with self.lock:
            return dict(self.counts)


def closed_by_peer(sock, wait_s, stop=None):
    """True when the server has closed `sock` (EOF or reset) within `wait_s`; replies the
    server sends meanwhile are read and dropped. False within 0.25 s of `stop` being set."""
    end = time.monotonic() + wait_s
    while stop is None or not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return False
        if not select.select([sock], [], [], min(left, 0.25))[0]:
            continue
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (BlockingIOError, socket.timeout, InterruptedError):
            continue
    return False


class HostileClient(threading.Thread):
    """The connect-misbehave-reconnect loop; a subclass's misbehave(sock) returns True when
    the server closed the connection, False when this client gave up on it."""

    kind = "?"

    def __init__(self, index, port, stop, deadline, tally, settings, host="127.0.0.1"):
        super().__init__(name=f"{self.kind}{index}", daemon=True)
        self.port, self.host, self.stop, self.deadline = port, host, stop, deadline
        self.tally, self.settings = tally, settings

    def more(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def wait_close(self, sock):
        """closed_by_peer() for as long as this client holds a connection."""
        return closed_by_peer(sock, min(self.hold_s(), self.deadline - time.monotonic()),
                              self.stop)

    def hold_s(self):
        """How long one connection may last before this client gives up on it: past the
        server's timeouts, so that a server that never closes shows as closed_by_client."""
        return self.settings["hold_s"]

    def run(self):
        made = 0
        while self.more() and made < self.settings["max_connections"]:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.settimeout(2.0)
                sock.connect((self.host, self.port))
                made += 1
                self.tally.add("connections")
                by_server = self.misbehave(sock)
                self.tally.add("closed_by_server" if by_server else "closed_by_client")
            except ConnectionRefusedError:
                self.tally.add("refused")
            except (ConnectionResetError, BrokenPipeError):
                self.tally.add("closed_by_server")
            except OSError:
                self.tally.add("errors")
            finally:
                sock.close()
            self.stop.wait(self.settings["pause_s"])  # never a busy loop, even when refused

    def misbehave(self, sock):
        raise NotImplementedError


class Idle(HostileClient):
    kind = "idle"

    def misbehave(self, sock):
        return self.wait_close(sock)


class Trickle(HostileClient):
    """A 1000-byte frame, one byte a second: a message started and never finished in time."""

    kind = "trickle"

    def misbehave(self, sock):
        frame = HEADER.pack(1000) + b"t" * 1000
        end = min(time.monotonic() + self.hold_s(), self.deadline)
        for byte in frame:
            if not self.more() or time.monotonic() > end:
                return False
            sock.send(bytes([byte]))
            if closed_by_peer(sock, self.settings["trickle_s"], self.stop):
                return True
        return False


class NeverRead(HostileClient):
    """Frames of reply_bytes each, sent until the socket blocks, then the server's replies
    pile up unread: a small receive buffer makes that quick."""

    kind = "never_read"

    def misbehave(self, sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        size = self.settings["reply_bytes"]
        frame = memoryview(HEADER.pack(size) + b"n" * size)
        end = min(time.monotonic() + self.hold_s(), self.deadline)
        sock.settimeout(0.5)
        at = 0  # frames stay whole across blocked sends: the server sees no garbage
        while self.more() and time.monotonic() < end:
            try:
                at = (at + sock.send(frame[at:])) % len(frame)
            except socket.timeout:
                # blocked: the server stopped reading us (its replies are stuck). A close
                # by the server shows as a reset on a later send.
                self.stop.wait(0.5)
        return False


class Oversized(HostileClient):
    kind = "oversized"

    def misbehave(self, sock):
        sock.sendall(HEADER.pack(self.settings["max_message"] + 1) + b"o" * 4096)
        return self.wait_close(sock)


class Garbage(HostileClient):
    kind = "garbage"

    def misbehave(self, sock):
        sock.sendall(os.urandom(256))
        return self.wait_close(sock)


class Reset(HostileClient):
    """Half of a 100-byte frame, then close with SO_LINGER 0: the kernel sends an RST."""

    kind = "reset"

    def misbehave(self, sock):
        sock.sendall(HEADER.pack(100) + b"r" * 50)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False


BY_KIND = {cls.kind: cls for cls in (Idle, Trickle, NeverRead, Oversized, Garbage, Reset)}


class Hostiles:
    """`per_kind` clients of each of `kinds`, started together, stopped together."""

    def __init__(self, port, kinds, per_kind, cap_s, settings):
        self.stop_event = threading.Event()
        self.tallies = {k: Tally() for k in kinds}
        deadline = time.monotonic() + cap_s
        self.threads = [BY_KIND[k](i, port, self.stop_event, deadline, self.tallies[k], settings)
                        for k in kinds for i in range(per_kind)]
        self.join_s = settings["hold_s"] + 5

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        """Stops every client; the names of those still running after join_s (daemon
        threads: they end with the process)."""
        self.stop_event.set()
        end = time.monotonic() + self.join_s
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def figures(self):
        return {k: t.snapshot() for k, t in self.tallies.items()}
