#!/usr/bin/env python3
"""TCP client for upper_server's raw stream: send a message, read its upper-cased echo.

Grown from the lesson's TCP client (socket.SOCK_STREAM, connect, send, recv).

    tcp_client.py hello world          # send two messages, print the replies
    tcp_client.py --sticky HELLO WORLD EGON   # three send()s, one recv(): b'HELLOWORLDEGON'
    tcp_client.py --hold 60 hello      # then keep the connection open (a server's child lives on)
    tcp_client.py                      # interactive, like the lesson's client
"""
import argparse
import fcntl
import select
import signal
import socket
import struct
import sys
import termios
import time

# struct tcp_info (linux/tcp.h): tcpi_data_segs_out, the segments sent that
# carried data (tcpi_segs_out would count the pure ACKs too), is a __u32 at
# byte 156 since Linux 4.6.
TCPI_DATA_SEGS_OUT = struct.Struct('=I')
TCPI_DATA_SEGS_OUT_OFFSET = 156
TCP_INFO_SIZE = 232



def family_of(host):
    """The lesson uses AF_INET (IPv4); an address with ':' is IPv6, e.g. ::1."""
    return socket.AF_INET6 if ':' in host else socket.AF_INET

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('messages', nargs='*', help='messages to send (none: interactive)')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8080)
    parser.add_argument('--count', type=int, default=1, metavar='N',
                        help='send each message N times')
    parser.add_argument('--timeout', type=float, default=5.0, metavar='S',
                        help='seconds to wait for the server (default 5)')
    parser.add_argument('--sticky', action='store_true',
                        help='one send() per message, then ONE recv(1024) once all replies '
                        'arrived')
    parser.add_argument('--nodelay', action='store_true',
                        help="set TCP_NODELAY: Nagle's algorithm off, each send() a segment")
    parser.add_argument('--hold', type=float, default=0, metavar='S',
                        help='after the replies, keep the connection open S seconds '
                        '(SIGTERM or Ctrl-C ends it sooner)')
    args = parser.parse_args()
    if args.hold < 0:
        parser.error('--hold must not be negative')
    if args.count < 1:
        parser.error('--count must be at least 1')
    if args.sticky and not args.messages:
        parser.error('--sticky needs messages on the command line')
    return args


def ask(phone, msg):
    """Sends one message and prints its whole reply."""
    data = msg.encode('utf-8')
    phone.sendall(data)  # send() may write only part; sendall() loops until all is sent
    # A stream has no message boundaries (the sticky-packet problem): one
    # recv() may return part of the reply, or the reply glued to the next one.
    # Upper-casing keeps the length, so the reply is whole once we have read
    # as many bytes as we sent.
    reply = b''
    while len(reply) < len(data):
        chunk = phone.recv(1024)
        if len(chunk) == 0:  # the server closed the connection
            raise ConnectionError(f'connection closed by server after {len(reply)} of '
                                  f'{len(data)} reply bytes')
        reply += chunk
    print(reply, flush=True)


def data_segments_sent(phone):
    """How many segments carrying data this socket has sent (TCP_INFO)."""
    info = phone.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    if len(info) < TCPI_DATA_SEGS_OUT_OFFSET + TCPI_DATA_SEGS_OUT.size:
        raise OSError('TCP_INFO has no tcpi_data_segs_out (Linux older than 4.6)')
    return TCPI_DATA_SEGS_OUT.unpack_from(info, TCPI_DATA_SEGS_OUT_OFFSET)[0]


def wait_for_bytes(phone, n, timeout):
    """Waits until n bytes are in the socket's receive buffer, and returns
    how many are. SO_RCVLOWAT makes poll() report the socket readable only
    then (or at end of stream), so nothing is read before all has arrived."""
    phone.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, n)
    poller = select.poll()
    poller.register(phone, select.POLLIN | select.POLLRDHUP)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        events = poller.poll(left * 1000) if left > 0 else []
        if not events:
            raise TimeoutError
        waiting = struct.unpack('i', fcntl.ioctl(phone, termios.FIONREAD, b'\0' * 4))[0]
        if waiting >= n:
            return waiting
        if events[0][1] & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
            raise ConnectionError(f'connection closed by server after {waiting} of {n} '
                                  'reply bytes')


def sticky(phone, messages, nodelay, timeout):
    """The lesson's sticky packets: each message its own send(), the replies
    left to pile up in the receive buffer, then one recv(1024) takes them
    all. A stream keeps the bytes and their order, not where writes began."""
    before = data_segments_sent(phone)
    total = 0
    for data in messages:
        phone.sendall(data)  # one send() call: these are a few bytes
        total += len(data)
    waiting = wait_for_bytes(phone, total, timeout)
    # Every byte was echoed, so every byte was sent: the count is final.
    segments = data_segments_sent(phone) - before
    mode = 'TCP_NODELAY' if nodelay else 'Nagle on'
    print(f'{len(messages)} send() calls went out as {segments} TCP segments ({mode})')
    data = phone.recv(1024)
    print(f'{waiting} reply bytes waiting (FIONREAD); one recv(1024) returned {len(data)}:')
    print(data, flush=True)


def interactive():
    """Lines typed at the '>>: ' prompt, as in the lesson; EOF (Ctrl-D) ends."""
    # No prompt when stdin is piped, so the output holds only the replies.
    prompt = '>>: ' if sys.stdin.isatty() else ''
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


def hold(seconds):
    """Keeps the connection open: under --model fork-per-connection its
    server-side child lives as long (ps --forest shows it)."""
    print(f'holding the connection open for {seconds:g} s', flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    time.sleep(seconds)


def main():
    args = parse_args()
    phone = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    phone.settimeout(args.timeout)  # connect, send and recv all give up after this
    if args.nodelay:
        phone.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    messages = args.messages or interactive()
    try:
        phone.connect((args.host, args.port))  # the server's ip and port
        if args.sticky:
            sticky(phone, [m.strip().encode('utf-8') for m in messages if m.strip()
                           for _ in range(args.count)], args.nodelay, args.timeout)
        else:
            for msg in messages:
                msg = msg.strip()
                if len(msg) == 0:  # nothing to send: the server would never answer
                    continue
                for _ in range(args.count):
                    ask(phone, msg)
        if args.hold > 0:
            hold(args.hold)
    except TimeoutError:
        print(f'tcp_client: {args.host}:{args.port} did not answer within {args.timeout:g}s',
              file=sys.stderr)
        return 1
    except OSError as e:  # refused, reset, closed...
        print(f'tcp_client: {args.host}:{args.port}: {e}', file=sys.stderr)
        return 1
    finally:
        phone.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
