"""The load: many clients in threads, each counting every request it makes.

- KeepAliveClient: one framed TCP connection, request after request; after a
  failure it reconnects.
- PerRequestClient: a new framed TCP connection for each request (Stevens'
  client), paced so that TIME_WAIT sockets stay bounded.
- UdpClient: one datagram, one reply, lossy by nature: counted, never asserted.

The wire format is upper_server's framed one (examples/clients/framed_client.py):
a 4-byte big-endian length, then that many bytes; the reply is the request
upper-cased. Every loop stops by itself: at `stop`, at its deadline, or after
max_requests; every socket has a timeout."""

import errno
import multiprocessing
import socket
import struct
import threading
import time

from attribution import EOF, OTHER, REFUSED, RESET, TIMEOUT, WRONG, Failure

HEADER = struct.Struct("!I")
MAX_RECORDED = 20000  # failures kept per client; more are counted as unrecorded
# tcpi_bytes_acked in struct tcp_info (linux/tcp.h, since Linux 4.1): the bytes of ours
# the peer's TCP has acknowledged, the SYN included.
TCP_INFO_BYTES_ACKED = struct.Struct("=Q")
TCP_INFO_BYTES_ACKED_AT = 120


def bytes_acked(sock):
    """tcpi_bytes_acked of `sock`, or None where the kernel does not report it."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < TCP_INFO_BYTES_ACKED_AT + TCP_INFO_BYTES_ACKED.size:
        return None
    return TCP_INFO_BYTES_ACKED.unpack_from(info, TCP_INFO_BYTES_ACKED_AT)[0]


class Counters:
    """One client's figures. `failures` holds a Failure per unanswered request (up to
    MAX_RECORDED; `unrecorded` counts the rest, which a report treats as lost)."""

    def __init__(self):
        self.sent = 0  # requests begun: a connect refused counts, as the request it carried
        self.answered = 0
        self.failures = []
        self.unrecorded = 0
        self.last_answer_at = None

    def fail(self, failure):
        if len(self.failures) < MAX_RECORDED:
            self.failures.append(failure)
        else:
            self.unrecorded += 1


class ClientThread(threading.Thread):
    def __init__(self, label, stop, deadline, max_requests):
        super().__init__(name=label, daemon=True)
        self.label = label
        self.stop = stop  # threading.Event
        self.deadline = deadline  # time.monotonic() at which the loop ends anyway
        self.max_requests = max_requests
        self.counters = Counters()

    def more(self):
        return (not self.stop.is_set() and time.monotonic() < self.deadline
                and self.counters.sent < self.max_requests)

    def pause(self, seconds):
        self.stop.wait(seconds)


def error_of(e):
    """(error kind, detail) for an exception raised by a socket call."""
    if isinstance(e, ConnectionRefusedError):
        return REFUSED, "ECONNREFUSED"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return RESET, errno.errorcode.get(e.errno, str(e.errno))
    if isinstance(e, socket.timeout):
        return TIMEOUT, "timed out"
    if isinstance(e, EOFError):
        return EOF, str(e)
    return OTHER, f"{type(e).__name__}: {e}"


class FramedConnection:
    """One client connection and what the harness knows of it."""

    def __init__(self, host, port, timeout):
        self.start = time.monotonic()
        self.answered = 0
        self.last_answer_at = None
        self.port = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.connect((host, port))
            self.port = self.sock.getsockname()[1]
            self.acked_at_connect = bytes_acked(self.sock)  # the SYN
            self.written = 0
        except BaseException:
            self.sock.close()
            raise

    def delivered(self):
        """Whether the server's TCP has acknowledged every byte written on this
        connection; None when unknown."""
        acked = bytes_acked(self.sock)
        if acked is None or self.acked_at_connect is None:
            return None
        return acked - self.acked_at_connect >= self.written

    def exchange(self, payload, progress):
        """Sends one frame and reads its reply; progress[0] counts reply bytes received,
        progress[1] is when the write returned (the whole request in the kernel: a thread
        may wait for the interpreter lock between reading the clock and writing)."""
        frame = HEADER.pack(len(payload)) + payload
        self.sock.sendall(frame)
        progress[1] = time.monotonic()
        self.written += len(frame)
        header = self.recv_exactly(HEADER.size, progress)
        return self.recv_exactly(HEADER.unpack(header)[0], progress)

    def recv_exactly(self, n, progress):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"EOF after {progress[0]} reply bytes")
            buf += chunk
            progress[0] += len(chunk)
        return bytes(buf)

    def close(self):
        self.sock.close()


class StreamClient(ClientThread):
    """The loop both TCP clients share: connect when there is no connection, one request,
    count it; keep_alive decides whether the connection stays for the next request."""

    keep_alive = True
    kind = "keepalive"

    def __init__(self, label, host, port, stop, deadline, max_requests, timeout=10.0,
                 pace_s=0.0, size=32):
        super().__init__(label, stop, deadline, max_requests)
        self.host, self.port, self.timeout = host, port, timeout
        self.pace_s = pace_s
        self.size = size

    def run(self):
        conn, n, c = None, 0, self.counters
        try:
            while self.more():
                n += 1
                payload = f"{self.label}-{n}-".encode() + b"x" * self.size
                c.sent += 1
                if conn is None:
                    began = time.monotonic()
                    try:
                        conn = FramedConnection(self.host, self.port, self.timeout)
                    except OSError as e:
                        kind, detail = error_of(e)
                        c.fail(Failure(self.kind, kind, 0, began, time.monotonic(),
                                       detail=detail))
                        self.pause(0.05)  # a refused connect is instant: do not spin
                        continue
                progress = [0, None]
                try:
                    reply = conn.exchange(payload, progress)
                    error = None if reply == payload.upper() else (WRONG, repr(reply[:40]))
                except (OSError, EOFError) as e:
                    error = error_of(e)
                now = time.monotonic()
                if error is None:
                    c.answered += 1
                    c.last_answer_at = now
                    conn.answered += 1
                    conn.last_answer_at = now
                else:
                    # read before the close: the socket keeps its counts after an RST
                    delivered = conn.delivered() if progress[1] is not None else None
                    c.fail(Failure(self.kind, error[0], conn.port, conn.start, now, progress[1],
                                   conn.answered, conn.last_answer_at, progress[0], error[1],
                                   delivered))
                if error is not None or not self.keep_alive:
                    conn.close()
                    conn = None
                if error is not None:
                    self.pause(0.01)
                elif self.pace_s:
                    self.pause(self.pace_s)
        finally:
            if conn is not None:
                conn.close()


class KeepAliveClient(StreamClient):
    keep_alive = True
    kind = "keepalive"


class PerRequestClient(StreamClient):
    keep_alive = False
    kind = "per_request"


class UdpClient(ClientThread):
    """Datagram after datagram on one socket; a reply is matched by its request's text,
    late replies to earlier requests are skipped. Counts sent, answered, timed out."""

    def __init__(self, label, host, port, stop, deadline, max_requests, timeout=0.5,
                 pace_s=0.002):
        super().__init__(label, stop, deadline, max_requests)
        self.host, self.port, self.timeout, self.pace_s = host, port, timeout, pace_s
        self.timed_out = 0
        self.errors = 0

    def run(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect((self.host, self.port))
            n, c = 0, self.counters
            while self.more():
                n += 1
                payload = f"{self.label}-{n}".encode()
                c.sent += 1
                if self.exchange(sock, payload):
                    c.answered += 1
                    c.last_answer_at = time.monotonic()
                if self.pace_s:
                    self.pause(self.pace_s)
        finally:
            sock.close()

    def exchange(self, sock, payload):
        expected = payload.upper()
        end = time.monotonic() + self.timeout
        try:
            sock.send(payload)
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                if sock.recv(65536) == expected:
                    return True
        except socket.timeout:
            pass
        except OSError:  # ECONNREFUSED from an ICMP error: nobody listens (any more)
            self.errors += 1
            self.pause(0.05)
            return False
        self.timed_out += 1
        return False


class Load:
    """A set of clients against one server, started together and stopped together. They
    run in LOAD_PROCESSES child processes (threads each), so that the harness's own
    thread, which picks and kills workers, never waits for the clients' interpreter lock.
    Live answered counts are shared (one slot per client, one writer each); the
    failures come back through a pipe when the clients stop. Times are
    time.monotonic(), one clock for every process of the machine."""

    LOAD_PROCESSES = 2

    def __init__(self, framed_port, udp_port, keepalive, per_request, udp, cap_s,
                 max_requests=10**7, timeout=10.0, keepalive_pace_s=0.0, per_request_pace_s=0.02,
                 host="127.0.0.1"):
        specs = [("k", i, KeepAliveClient, framed_port, keepalive_pace_s)
                 for i in range(keepalive)]
        specs += [("p", i, PerRequestClient, framed_port, per_request_pace_s)
                  for i in range(per_request)]
        specs += [("u", i, UdpClient, udp_port, None) for i in range(udp if udp_port else 0)]
        self.specs = [(f"{kind}{i}", cls, port, pace) for kind, i, cls, port, pace in specs]
        self.kinds = [cls for _, cls, _, _ in self.specs]
        ctx = multiprocessing.get_context("fork")
        self.stop_event = ctx.Event()
        self.live = ctx.Array("q", len(self.specs), lock=False)  # answered, per client
        self.args = (host, cap_s, max_requests, timeout)
        self.procs, self.pipes = [], []
        self.ctx = ctx
        self.results = None
        self.join_timeout = timeout + 10

    def start(self):
        n = max(1, min(self.LOAD_PROCESSES, len(self.specs)))
        for k in range(n):
            mine = list(range(k, len(self.specs), n))
            receive, send = self.ctx.Pipe(duplex=False)
            proc = self.ctx.Process(target=run_clients, name=f"faults-load-{k}", daemon=True,
                                    args=([(i, *self.specs[i]) for i in mine], self.args,
                                          self.stop_event, self.live, send))
            proc.start()
            send.close()
            LOAD_PROCESSES.add(proc)
            self.procs.append(proc)
            self.pipes.append(receive)

    def stop(self):
        """Stops every client and collects its figures; the labels of those that did not
        end by themselves (their process is then ended by pid)."""
        self.stop_event.set()
        self.results, stuck = [], []
        end = time.monotonic() + self.join_timeout
        for proc, pipe in zip(self.procs, self.pipes):
            got = None
            if pipe.poll(max(0.0, end - time.monotonic())):
                try:
                    got = pipe.recv()
                except (EOFError, OSError):
                    got = None
            if got is None:
                stuck.append(proc.name)
            else:
                self.results += got["clients"]
                stuck += got["stuck"]
            proc.join(max(0.0, end - time.monotonic()) + 1)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            LOAD_PROCESSES.discard(proc)
            pipe.close()
        return stuck

    def _tcp(self):
        return [c for c in self.results if c["kind"] != "udp"]

    def answered(self):
        """TCP requests answered so far (live)."""
        return sum(self.live[i] for i, cls in enumerate(self.kinds) if cls is not UdpClient)

    def wait_answered(self, each, timeout):
        """Waits until every keep-alive client has `each` answers (a condition, polled);
        False at `timeout`."""
        end = time.monotonic() + timeout
        keepalive = [i for i, cls in enumerate(self.kinds) if cls is KeepAliveClient] or [
            i for i, cls in enumerate(self.kinds) if cls is not UdpClient]
        while time.monotonic() < end:
            if all(self.live[i] >= each for i in keepalive):
                return True
            time.sleep(0.02)
        return False

    def tcp_figures(self):
        """sent, answered, unrecorded over every TCP client, and their failures; after
        stop()."""
        tcp = self._tcp()
        failures = [f for c in tcp for f in c["failures"]]
        return {"sent": sum(c["sent"] for c in tcp),
                "answered": sum(c["answered"] for c in tcp),
                "unrecorded": sum(c["unrecorded"] for c in tcp)}, failures

    def udp_figures(self):
        udp = [c for c in self.results if c["kind"] == "udp"]
        return {k: sum(c[k] for c in udp) for k in ("sent", "answered", "timed_out", "errors")}


LOAD_PROCESSES = set()  # the load's child processes, ended by end_load() whatever happens


def end_load():
    for proc in list(LOAD_PROCESSES):
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        LOAD_PROCESSES.discard(proc)


class LiveCounters(Counters):
    """Counters whose answered count is also published in a shared slot."""

    def __init__(self, live, index):
        self._live, self._index = live, index
        super().__init__()

    @property
    def answered(self):
        return self._answered

    @answered.setter
    def answered(self, value):
        self._answered = value
        if self._live is not None:
            self._live[self._index] = value


def run_clients(specs, args, stop, live, pipe):
    """The body of one load process: its clients in threads until `stop` (or their cap),
    then their figures through `pipe`."""
    import signal as signals
    signals.signal(signals.SIGINT, signals.SIG_IGN)  # Ctrl-C is the harness's to handle
    host, cap_s, max_requests, timeout = args
    deadline = time.monotonic() + cap_s
    threads = []
    for index, label, cls, port, pace in specs:
        if cls is UdpClient:
            t = UdpClient(label, host, port, stop, deadline, max_requests)
        else:
            t = cls(label, host, port, stop, deadline, max_requests, timeout, pace)
        t.counters = LiveCounters(live, index)
        threads.append(t)
    for t in threads:
        t.start()
    stop.wait(max(0.0, deadline - time.monotonic()))
    stop.set()
    stuck = []
    for t in threads:
        t.join(timeout + 5)
        if t.is_alive():
            stuck.append(t.label)
    out = []
    for t in threads:
        c = t.counters
        out.append({"label": t.label, "kind": "udp" if isinstance(t, UdpClient) else t.kind,
                    "sent": c.sent, "answered": c.answered, "failures": c.failures,
                    "unrecorded": c.unrecorded, "timed_out": getattr(t, "timed_out", 0),
                    "errors": getattr(t, "errors", 0)})
    pipe.send({"clients": out, "stuck": stuck})
    pipe.close()


def framed_probe(port, timeout=5.0, host="127.0.0.1"):
    """One request on a new connection: None when answered, else the error's text."""
    try:
        conn = FramedConnection(host, port, timeout)
    except OSError as e:
        return f"connect: {error_of(e)[1]}"
    try:
        reply = conn.exchange(b"probe", [0, None])
        return None if reply == b"PROBE" else f"wrong reply {reply[:40]!r}"
    except (OSError, EOFError) as e:
        return error_of(e)[1]
    finally:
        conn.close()


def udp_probe(port, tries=20, timeout=0.25, host="127.0.0.1"):
    """True when one of `tries` datagrams is answered."""
    client = UdpClient("probe", host, port, threading.Event(), time.monotonic() + 60, tries,
                       timeout, 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((host, port))
        for i in range(tries):
            if client.exchange(sock, f"probe-{i}".encode()):
                return True
        return False
    finally:
        sock.close()
