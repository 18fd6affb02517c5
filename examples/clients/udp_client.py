#!/usr/bin/env python3
"""UDP client for upper_server: each message is one datagram, each reply one datagram.

Grown from the lesson's UDP client (socket.SOCK_DGRAM, sendto, recvfrom).
UDP keeps message boundaries, so there is no sticky-packet problem: one
recvfrom() returns exactly one datagram. But UDP is unreliable: a lost
datagram is simply never answered, hence the timeout.

    udp_client.py hello world          # send two messages, print the replies
    udp_client.py                      # interactive, like the lesson's client
"""
import argparse
import socket
import sys

# The biggest UDP payload. The lesson's recvfrom(1024) would cut a longer
# reply: the rest of a datagram that does not fit the buffer is lost.
BUFSIZE = 65535



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
    args = parser.parse_args()
    if args.count < 1:
        parser.error('--count must be at least 1')
    return args


def ask(client, server_addr, msg):
    """Sends one datagram and prints the one datagram that answers it."""
    client.sendto(msg.encode('utf-8'), server_addr)
    data, _ = client.recvfrom(BUFSIZE)
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


def main():
    args = parse_args()
    server_addr = (args.host, args.port)
    client = socket.socket(family_of(args.host), socket.SOCK_DGRAM)  # datagram protocol -> udp
    client.settimeout(args.timeout)  # so a lost datagram never hangs us
    messages = args.messages or interactive()
    try:
        for msg in messages:
            msg = msg.strip()
            if len(msg) == 0:
                continue
            for _ in range(args.count):
                ask(client, server_addr, msg)
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
