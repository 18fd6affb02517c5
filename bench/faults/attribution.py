"""Which failed requests a fault explains, and which are lost.

Every request the load clients make ends answered or as a Failure. A scenario
then says what its fault may legitimately break (a Policy): the connections a
killed or stopped worker held (a Cut: the client-side ports of the sockets in
that worker's descriptor table at the moment it was frozen), requests cut by a
graceful stop, connections that waited out a descriptor flood. classify() puts
each failure in one category; "lost" is the only one that fails a scenario.
Pure logic: the unit test (tests/bench/faults_test.py) drives it with made-up
failures."""

from dataclasses import dataclass, field

# How a request failed, from the client's side.
REFUSED = "refused"  # ECONNREFUSED at connect
RESET = "reset"  # ECONNRESET or EPIPE
EOF = "eof"  # the server closed (FIN) before the whole reply came
TIMEOUT = "timeout"  # no (whole) reply within the client's timeout
WRONG = "wrong_reply"  # a reply, but not the request upper-cased
OTHER = "error"  # any other OSError

# Categories of classify(). LOST fails the scenario; the others are explained.
LOST = "lost"
KILLED = "killed with its worker"
CLOSED_BY_STOP = "closed by the stop (sent after SIGTERM)"
NOT_ACCEPTED = "not accepted before SIGTERM"
REFUSED_AFTER_STOP = "refused after SIGTERM"
CLOSED_IDLE = "closed idle keep-alive"
SHED = "waited out the descriptor flood"
NOT_DELIVERED = "not in the server's socket at the stop (never acknowledged)"


@dataclass
class Failure:
    """One request that was not answered. Times are time.monotonic() seconds."""
    client: str  # "keepalive" or "per_request"
    error: str  # REFUSED, RESET, EOF, TIMEOUT, WRONG or OTHER
    port: int  # the client's local port, 0 when it never connected
    conn_start: float  # when the connection's connect() began
    failed_at: float
    sent_at: float = None  # when the request's write returned; None: never wholly sent
    conn_answered: int = 0  # requests answered earlier on the same connection
    last_answer_at: float = None  # when the previous one on this connection was answered
    reply_bytes: int = 0  # bytes of this request's reply (header included) received
    detail: str = ""
    # Whether the server's TCP acknowledged the whole request (TCP_INFO bytes_acked, read
    # by the client after the failure); None when unknown. A write() that returned has
    # put the request in the kernel, not in the server's socket: on a loaded machine the
    # loopback delivery may wait for ksoftirqd, and a worker that closes the connection
    # meanwhile (idle, from all it could read) sends a FIN, which the client reads as EOF,
    # then an RST for the bytes that come after it, never acknowledged. Unread bytes in
    # the socket at the close make it an RST at once (ECONNRESET), acknowledged or not
    # (the ACK may have been delayed): lost.
    delivered: bool = None


@dataclass(frozen=True)
class Cut:
    """A worker (pid) frozen at `at`, holding the server side of the connections whose
    client ports are `ports`. `reason` is the category its failures get. `exact` is False
    when some thread of it still ran as its connections were listed (a connection it
    accepted after the list would be counted lost, not cut)."""
    pid: int
    at: float
    ports: frozenset
    reason: str = KILLED
    exact: bool = True


def cut_of(f, cuts):
    """The Cut that explains failure `f`: its port was held by the cut worker while this
    very connection was open (began before the cut, failed after it), else None."""
    if not f.port:
        return None
    for c in cuts:
        if f.port in c.ports and f.conn_start <= c.at <= f.failed_at:
            return c
    return None


@dataclass
class Policy:
    """What a scenario's fault may break.
    cuts: workers killed or stopped, with their connections.
    stop_at: when SIGTERM was sent (sigterm); accepted: a Cut-like snapshot of the
      connections the workers held just before it.
    closed_idle_ok: a reused keep-alive connection closed cleanly before any byte of the
      reply (the race every keep-alive protocol has when a server retires a connection:
      HTTP clients retry such a request, RFC 9112 section 9.3.1) is explained.
    flood: (begin, end) of a descriptor flood; a connection begun inside it that never got
      an answer waited out the flood."""
    cuts: list = field(default_factory=list)
    stop_at: float = None
    accepted: Cut = None
    closed_idle_ok: bool = False
    flood: tuple = None


def closed_idle(f):
    return f.error == EOF and f.reply_bytes == 0 and f.conn_answered > 0


def not_delivered(f):
    """The server closed first (FIN: the client read EOF) with no byte of the reply, and
    its TCP never acknowledged the request: it came after the close. A reset (ECONNRESET)
    is not excused whatever the count says: a worker closing with the request unread in
    its socket sends an RST at once, and the ACK it delayed (Linux waits up to ~40 ms to
    ride on the reply) never comes."""
    return f.error == EOF and f.reply_bytes == 0 and f.delivered is False


def classify(f, policy):
    """The category of failure `f` under `policy`: LOST or what explains it."""
    cut = cut_of(f, policy.cuts)
    if cut:
        return cut.reason
    if policy.stop_at is not None:
        return classify_at_stop(f, policy)
    if policy.closed_idle_ok and closed_idle(f):
        return CLOSED_IDLE
    if policy.flood and f.conn_answered == 0 and f.error != REFUSED:
        begin, end = policy.flood
        if begin <= f.conn_start <= end:
            return SHED
    return LOST


def classify_at_stop(f, policy):
    """SIGTERM: every request sent before the signal on a connection a worker had accepted
    must be answered. After the signal, a worker may close its connections once nothing of
    them is in flight (a clean close before any byte of the reply), and the listeners
    close (refused). A connection not yet accepted at the signal is not promised anything."""
    stop = policy.stop_at
    if f.error == REFUSED:
        # by when the refusal was seen: a thread may be descheduled between reading the
        # clock and its connect(), and the listeners close only after the signal
        return REFUSED_AFTER_STOP if f.failed_at >= stop else LOST
    accepted = (f.last_answer_at is not None and f.last_answer_at < stop) or (
        policy.accepted is not None and cut_of(f, [policy.accepted]) is not None)
    if not accepted:
        return NOT_ACCEPTED
    if f.sent_at is not None and f.sent_at < stop:
        # written before the signal, but still in the kernel when the worker drained
        return NOT_DELIVERED if not_delivered(f) else LOST
    if f.error == EOF and f.reply_bytes == 0:
        return CLOSED_BY_STOP
    return LOST


def tally(failures, policy):
    """{category: count} over `failures`, and the LOST ones (in order)."""
    counts, lost = {}, []
    for f in failures:
        c = classify(f, policy)
        counts[c] = counts.get(c, 0) + 1
        if c == LOST:
            lost.append(f)
    return counts, lost


def error_counts(failures):
    """The client-side view: {refused, reset (ECONNRESET/EPIPE or EOF before the whole
    reply), timeout, other (wrong reply, other errors)}."""
    out = {"refused": 0, "reset": 0, "timeout": 0, "other": 0}
    for f in failures:
        if f.error == REFUSED:
            out["refused"] += 1
        elif f.error in (RESET, EOF):
            out["reset"] += 1
        elif f.error == TIMEOUT:
            out["timeout"] += 1
        else:
            out["other"] += 1
    return out
