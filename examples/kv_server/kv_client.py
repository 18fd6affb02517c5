#!/usr/bin/env python3
"""Client for kv_server: each argument is one command line, each reply one line.

The protocol is lines of text: the client ends every command with '\\n', and
the server answers each with one line. A newline is the message boundary, as
the 4-byte length header is in framed_client.py: TCP delivers a byte stream
(writes may arrive split or stuck together), and the line codec on each side
cuts it back into lines.

    kv_client.py "SET a 1" "GET a" "DEL a" QUIT   # one command per argument
    kv_client.py --together "SET a 1" "GET a"     # all lines in ONE write
    kv_client.py --byte-by-byte "SET a 1"         # a line trickles in, byte by byte
    kv_client.py                                  # interactive: commands from stdin

Commands: SET key value -> OK, GET key -> the value or NIL, DEL key -> 1 or 0,
QUIT -> BYE (then the server closes), anything else -> ERR unknown command.
Exit status 0 when every command got its reply, 1 otherwise.
"""
import argparse
import socket
import sys
import time


def family_of(host):
    """The lesson uses AF_INET (IPv4); an address with ':' is IPv6, e.g. ::1."""
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog='--together and --byte-by-byte exclude each other.')
    parser.add_argument('commands', nargs='*', metavar='COMMAND',
                        help='one command line each, e.g. "SET a 1" (none: read stdin)')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=7070)
    parser.add_argument('--timeout', type=float, default=5.0, metavar='S',
                        help='seconds to wait for the server (default 5)')
    parser.add_argument('--together', action='store_true',
                        help='send all command lines in one sendall(), then read the replies')
    parser.add_argument('--byte-by-byte', action='store_true',
                        help='send each line one byte per write, with TCP_NODELAY')
    parser.add_argument('--delay-ms', type=float, default=1.0, metavar='MS',
                        help='pause between bytes with --byte-by-byte (default 1)')
    args = parser.parse_args()
    if args.together and args.byte_by_byte:
        parser.error('--together and --byte-by-byte exclude each other')
    if args.together and not args.commands:
        parser.error('--together needs commands on the command line')
    for command in args.commands:
        if '\n' in command or '\r' in command:
            parser.error(f'a command is one line; {command!r} holds a line break')
    return args


class LineReader:
    """The client's half of the line codec: bytes in, whole lines out.

    recv() returns whatever has arrived: part of a line, or several lines
    stuck together. The bytes after the last newline wait in the buffer for
    the rest of their line."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b''

    def line(self):
        """The next whole line without its ending, or None when the server closed."""
        while b'\n' not in self.buffer:
            chunk = self.sock.recv(4096)
            if len(chunk) == 0:  # the server closed the connection
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b'\n', 1)
        return line.rstrip(b'\r').decode('utf-8', errors='replace')


def send_byte_by_byte(sock, data, delay_ms):
    """One byte per write: the server sees half lines and must wait for the '\\n'."""
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        time.sleep(delay_ms / 1000)


def interactive():
    """Command lines typed at the '>>: ' prompt; empty lines are skipped; EOF (Ctrl-D) ends."""
    # No prompt when stdin is piped, so the output holds only the replies.
    prompt = '>>: ' if sys.stdin.isatty() else ''
    while True:
        try:
            line = input(prompt)
        except EOFError:
            return
        if line.strip():
            yield line.rstrip('\r\n')


def one_by_one(sock, reader, commands, args):
    """Send a line, read its reply, then the next. Returns the commands left
    unanswered (of the command line: stdin is not read on once the server left)."""
    commands = iter(commands)
    rest = (lambda: list(commands)) if args.commands else (lambda: [])
    for command in commands:
        data = command.encode('utf-8') + b'\n'
        if args.byte_by_byte:
            send_byte_by_byte(sock, data, args.delay_ms)
        else:
            sock.sendall(data)
        reply = reader.line()
        if reply is None:
            print('kv_client: connection closed by server', file=sys.stderr)
            return [command] + rest()
        print(reply, flush=True)
        if reply == 'BYE':  # QUIT: the server closes now
            return rest()
    return []


def together(sock, reader, commands):
    """All lines in one write: the server reads them stuck together, and only
    the newlines tell where one command ends. Returns those unanswered."""
    sock.sendall(b''.join(c.encode('utf-8') + b'\n' for c in commands))
    for i, _ in enumerate(commands):
        reply = reader.line()
        if reply is None:
            print('kv_client: connection closed by server', file=sys.stderr)
            return commands[i:]
        print(reply, flush=True)
        if reply == 'BYE':
            return commands[i + 1:]
    return []


def main():
    args = parse_args()
    sock = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    sock.settimeout(args.timeout)  # connect, send and recv all give up after this
    if args.byte_by_byte:
        # Without TCP_NODELAY, Nagle's algorithm would glue the small writes
        # back together (the lesson's sticky packets).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.connect((args.host, args.port))
        reader = LineReader(sock)
        if args.together:
            left = together(sock, reader, args.commands)
        else:
            left = one_by_one(sock, reader, args.commands or interactive(), args)
    except TimeoutError:
        print(f'kv_client: {args.host}:{args.port} did not answer within {args.timeout:g}s',
              file=sys.stderr)
        return 1
    except OSError as e:  # refused, reset...
        print(f'kv_client: {args.host}:{args.port}: {e}', file=sys.stderr)
        return 1
    finally:
        sock.close()
    if left:
        print(f'kv_client: no reply to {len(left)} command(s): '
              + ', '.join(repr(c) for c in left), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
