#!/usr/bin/env python3
"""TCP client for upper_server's raw stream: send a message, read its upper-cased echo.

Grown from the lesson's TCP client (socket.SOCK_STREAM, connect, send, recv).

    tcp_client.py hello world          # send two messages, print the replies
    tcp_client.py                      # interactive, like the lesson's client
"""
import argparse
import socket
import sys



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
    args = parser.parse_args()
    if args.count < 1:
        parser.error('--count must be at least 1')
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
    phone = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    phone.settimeout(args.timeout)  # connect, send and recv all give up after this
    messages = args.messages or interactive()
    try:
        phone.connect((args.host, args.port))  # the server's ip and port
        for msg in messages:
            msg = msg.strip()
            if len(msg) == 0:  # nothing to send: the server would never answer
                continue
            for _ in range(args.count):
                ask(phone, msg)
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
