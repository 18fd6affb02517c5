#!/usr/bin/env python3
"""UDP client for upper_server: each message is one datagram, each reply one datagram.

Grown from the lesson's UDP client (socket.SOCK_DGRAM, sendto, recvfrom).
UDP keeps message boundaries, so there is no sticky-packet problem: one
recvfrom() returns exactly one datagram. But UDP is unreliable: a lost
datagram is simply never answered, hence the timeout.

    udp_client.py hello world          # send two messages, print the replies
    udp_client.py --recv-size 1 hello hi   # the lesson's recvfrom(1): truncation
    udp_client.py --size 70000         # one datagram of 70000 bytes: too big for UDP
    udp_client.py                      # interactive, like the lesson's client
"""
import argparse
import errno
import socket
import sys

# The biggest UDP payload. The lesson's recvfrom(1024) would cut a longer
# reply: the rest of a datagram that does not fit the buffer is lost.
BUFSIZE = 65535

# The largest payload of one UDP datagram: 65,535 bytes of IPv4 packet less
# 20 of IP header and 8 of UDP header; IPv6's 65,535 bytes exclude its header.
MAX_PAYLOAD = {socket.AF_INET: 65507, socket.AF_INET6: 65527}

# What --size fills its datagram with: lower case, so the upper-cased reply
# is visibly the server's.
PATTERN = b'abcdefghijklmnopqrstuvwxyz'


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
                        help='seconds to wait for a reply (default 5)')
    parser.add_argument('--recv-size', type=int, metavar='N',
                        help="read each reply into N bytes (the lesson's recvfrom(N)); "
                        'report truncation')
    parser.add_argument('--size', type=int, metavar='N',
                        help="send one datagram of N bytes ('abc...'), no messages")
    args = parser.parse_args()
    if args.count < 1:
        parser.error('--count must be at least 1')
    if args.recv_size is not None and not 1 <= args.recv_size <= BUFSIZE:
        parser.error(f'--recv-size must be 1..{BUFSIZE}')
    if args.size is not None:
        if args.messages:
            parser.error('--size sends its own datagram: no messages')
        if not 1 <= args.size <= 1 << 20:
            parser.error('--size must be 1..1048576')
    return args


def ask(client, server_addr, data):
    """Sends one datagram and prints the one datagram that answers it."""
    client.sendto(data, server_addr)
    data, _ = client.recvfrom(BUFSIZE)
    print(data, flush=True)


def counted(n):
    return f'{n} byte' if n == 1 else f'{n} bytes'


def shown(data):
    """A bytes literal, cut short after 16 bytes so that a big datagram fits a line."""
    return repr(data) if len(data) <= 24 else repr(data[:16]) + '...'


def ask_and_report(client, server_addr, data, recv_size):
    """Sends one datagram and reads its reply with a recv_size-byte buffer,
    as the lesson's recvfrom(1) experiment does, reporting what was lost.

    MSG_TRUNC in the flags makes Linux return the datagram's real length
    even when the buffer is smaller; MSG_TRUNC in the returned flags says
    the kernel cut it. The rest of a cut datagram is discarded: the next
    read starts at the next datagram (boundaries kept, data lost)."""
    try:
        client.sendto(data, server_addr)
    except OSError as e:
        if e.errno != errno.EMSGSIZE:
            raise
        ip = 'IPv6' if client.family == socket.AF_INET6 else 'IPv4'
        print(f'sent nothing: sendto() refused a {len(data)}-byte datagram: {e.strerror} '
              f'(EMSGSIZE): a UDP datagram over {ip} carries at most '
              f'{MAX_PAYLOAD[client.family]} bytes, so a larger one never reaches the server',
              flush=True)
        return
    buffer = bytearray(recv_size)
    length, _, flags, _ = client.recvmsg_into([buffer], 0, socket.MSG_TRUNC)
    got = bytes(buffer[:min(length, recv_size)])
    line = (f'sent {counted(len(data))} {shown(data)}; recvmsg({recv_size}) returned '
            f'{counted(len(got))} {shown(got)}: ')
    if flags & socket.MSG_TRUNC:
        line += (f'truncated (MSG_TRUNC): the datagram had {counted(length)}, '
                 f'{counted(length - len(got))} lost')
    else:
        line += 'whole'
    print(line, flush=True)


def interactive():
    """Lines typed at the '>>: ' prompt, as in the lesson; EOF (Ctrl-D) ends."""
    # No prompt when stdin is piped, so the output holds only the replies.
    prompt = '>>: ' if sys.stdin.isatty() else ''
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


def datagrams(args):
    """What to send: the --size pattern, or the messages (typed or given)."""
    if args.size is not None:
        yield (PATTERN * (args.size // len(PATTERN) + 1))[:args.size]
        return
    for msg in args.messages or interactive():
        msg = msg.strip()
        if len(msg) > 0:
            yield msg.encode('utf-8')


def main():
    args = parse_args()
    server_addr = (args.host, args.port)
    client = socket.socket(family_of(args.host), socket.SOCK_DGRAM)  # datagram protocol -> udp
    client.settimeout(args.timeout)  # so a lost datagram never hangs us
    report = args.recv_size is not None or args.size is not None
    try:
        for data in datagrams(args):
            for _ in range(args.count):
                if report:
                    ask_and_report(client, server_addr, data, args.recv_size or BUFSIZE)
                else:
                    ask(client, server_addr, data)
    except TimeoutError:
        print(f'udp_client: no reply from {args.host}:{args.port} within {args.timeout:g}s '
              '(datagram or reply lost, or no server listening)', file=sys.stderr)
        return 1
    except OSError as e:
        print(f'udp_client: {args.host}:{args.port}: {e}', file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
