#!/usr/bin/env python3
"""Framed TCP client for upper_server: each message travels as one frame.

The lesson's cure for sticky packets, a custom header: every frame is a
4-byte unsigned big-endian length (struct.pack('!I', n)) followed by n bytes
of payload. The reader first takes exactly 4 bytes, then exactly n, so it
always knows where one message ends and the next begins.

    framed_client.py hello world                 # one frame each, print each reply
    framed_client.py --byte-by-byte hello        # the frame trickles in one byte at a time
    framed_client.py --sticky a bb ccc           # three frames in ONE write
    framed_client.py --raw-length 100000000      # a header only: is it refused?
    framed_client.py --split --count 20 hello    # header and payload in two send()s: ~40 ms
    framed_client.py                             # interactive, like the lesson's client
"""
import argparse
import socket
import statistics
import struct
import sys
import time

HEADER = struct.Struct('!I')  # network byte order (big-endian), unsigned 32 bits



def family_of(host):
    """The lesson uses AF_INET (IPv4); an address with ':' is IPv6, e.g. ::1."""
    return socket.AF_INET6 if ':' in host else socket.AF_INET

def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog='--byte-by-byte, --sticky, --raw-length and --split exclude each other.')
    parser.add_argument('messages', nargs='*', help='messages to send (none: interactive)')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8081)
    parser.add_argument('--count', type=int, default=1, metavar='N',
                        help='send each message N times')
    parser.add_argument('--timeout', type=float, default=5.0, metavar='S',
                        help='seconds to wait for the server (default 5)')
    parser.add_argument('--byte-by-byte', action='store_true',
                        help='send each frame one byte per write, with TCP_NODELAY')
    parser.add_argument('--delay-ms', type=float, default=1.0, metavar='MS',
                        help='pause between bytes with --byte-by-byte (default 1)')
    parser.add_argument('--sticky', action='store_true',
                        help='send all frames in one sendall(), then read all replies')
    parser.add_argument('--raw-length', type=int, metavar='N',
                        help='send only a header announcing N bytes, then report what happens')
    parser.add_argument('--split', action='store_true',
                        help='header and payload in two send() calls; print round-trip times')
    parser.add_argument('--nodelay', action='store_true',
                        help="set TCP_NODELAY: Nagle's algorithm off")
    args = parser.parse_args()
    if args.count < 1:
        parser.error('--count must be at least 1')
    if args.byte_by_byte + args.sticky + (args.raw_length is not None) + args.split > 1:
        parser.error('--byte-by-byte, --sticky, --raw-length and --split exclude each other')
    if (args.sticky or args.split) and not args.messages:
        parser.error('--sticky and --split need messages on the command line')
    if args.raw_length is not None:
        if args.messages:
            parser.error('--raw-length sends no messages')
        if not 0 <= args.raw_length <= 0xFFFFFFFF:
            parser.error('--raw-length must fit in 4 bytes (0..4294967295)')
    return args


def frame(payload):
    """The custom header (the payload's length) followed by the payload."""
    return HEADER.pack(len(payload)) + payload


def recv_exactly(phone, n):
    """Exactly n bytes: recv() may return fewer, so keep asking."""
    buf = b''
    while len(buf) < n:
        chunk = phone.recv(min(n - len(buf), 65536))
        if len(chunk) == 0:
            raise ConnectionError(f'connection closed by server after {len(buf)} of {n} bytes')
        buf += chunk
    return buf


def recv_frame(phone):
    """One whole reply frame: the 4-byte header, then exactly that many bytes."""
    (length,) = HEADER.unpack(recv_exactly(phone, HEADER.size))
    return recv_exactly(phone, length)


def send_byte_by_byte(phone, data, delay_ms):
    """One byte per write, so the server sees a frame split at every byte."""
    for i in range(len(data)):
        phone.sendall(data[i:i + 1])
        time.sleep(delay_ms / 1000)


def split(phone, payloads, nodelay):
    """Write, write, read: the header and the payload each in its own
    send(), then the reply. With Nagle's algorithm on, the payload (a small
    segment) waits until the header is acknowledged; the server, holding
    half a frame and so no reply to carry the ACK, delays it (Linux: 40 ms
    at least, except in its quick-ACK mode, e.g. early in a connection)."""
    times = []
    for payload in payloads:
        start = time.perf_counter()
        phone.sendall(HEADER.pack(len(payload)))
        phone.sendall(payload)
        reply = recv_frame(phone)
        times.append((time.perf_counter() - start) * 1000)
        print(f'{reply} in {times[-1]:.2f} ms', flush=True)
    mode = 'TCP_NODELAY' if nodelay else 'Nagle on'
    print(f'{len(times)} requests, header and payload in two send() calls ({mode}): '
          f'median {statistics.median(times):.2f} ms, max {max(times):.2f} ms')
    if nodelay:
        print('TCP_NODELAY: each payload went out at once, without waiting for the ACK '
              'of its header')
    elif statistics.median(times) >= 20:  # the delayed-ACK timer: 40 ms at least on Linux
        print("a request of ~40 ms is its payload held back by Nagle's algorithm until the "
              "server's delayed ACK of the header (--nodelay sends it at once)")
    else:
        print("no stall measured: the server acknowledged each header at once (quick-ACK), "
              "so Nagle's algorithm had nothing to wait for")


def interactive():
    """Lines typed at the '>>: ' prompt, as in the lesson; EOF (Ctrl-D) ends."""
    # No prompt when stdin is piped, so the output holds only the replies.
    prompt = '>>: ' if sys.stdin.isatty() else ''
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


def payloads(args):
    """The messages to send, each as many times as --count says."""
    for msg in args.messages or interactive():
        msg = msg.strip()
        if len(msg) == 0:
            continue
        for _ in range(args.count):
            yield msg.encode('utf-8')


def raw_length(phone, n):
    """A header announcing n bytes and nothing after it: shows whether the
    server refuses an oversized frame (closes) or waits for the payload."""
    phone.sendall(HEADER.pack(n))
    print(f'sent a header announcing {n} bytes, and no payload', flush=True)
    try:
        print(recv_frame(phone), flush=True)
    except ConnectionError:  # closed (recv returned b'') or reset
        print('connection closed by server', flush=True)


def main():
    args = parse_args()
    phone = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    phone.settimeout(args.timeout)  # connect, send and recv all give up after this
    if args.byte_by_byte or args.nodelay:
        # Without TCP_NODELAY, Nagle's algorithm would glue the small writes
        # of --byte-by-byte back together (the lesson's sticky packets), and
        # the server would see whole frames anyway.
        phone.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        phone.connect((args.host, args.port))
        if args.raw_length is not None:
            raw_length(phone, args.raw_length)
        elif args.sticky:
            # Many frames in one write: the server's reads see them stuck
            # together, and the length headers are what separates them.
            frames = [frame(p) for p in payloads(args)]
            phone.sendall(b''.join(frames))
            for _ in frames:
                print(recv_frame(phone), flush=True)
        elif args.split:
            split(phone, list(payloads(args)), args.nodelay)
        else:
            for payload in payloads(args):
                if args.byte_by_byte:
                    send_byte_by_byte(phone, frame(payload), args.delay_ms)
                else:
                    phone.sendall(frame(payload))
                print(recv_frame(phone), flush=True)
    except TimeoutError:
        print(f'framed_client: {args.host}:{args.port} did not answer within {args.timeout:g}s',
              file=sys.stderr)
        return 1
    except OSError as e:  # refused, reset, closed...
        print(f'framed_client: {args.host}:{args.port}: {e}', file=sys.stderr)
        return 1
    finally:
        phone.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
