#!/usr/bin/env python3
"""Each socketserver class beside the prefork model that does the same.

For every class the lesson's handler can run under, starts
examples/lesson/socketserver_echo.py with that class and build/bin/echo_blocking
(the same handler in C++) with the matching --model, both on port 0, sends
both the same messages and prints their replies side by side
(docs/guide/06-socketserver.md). Stops both servers before the next row.

  examples/lesson/side_by_side.py [--build-dir build]
"""

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ROWS = [  # socketserver class, prefork --model, protocol
    ("TCPServer", "iterative", "tcp"),
    ("ThreadingTCPServer", "thread-per-connection", "tcp"),
    ("ForkingTCPServer", "fork-per-connection", "tcp"),
    ("UDPServer", "iterative", "udp"),
    ("ThreadingUDPServer", "thread-per-connection", "udp"),
    ("ForkingUDPServer", "fork-per-connection", "udp"),
]
MESSAGES = [b"hello", b"world"]
TIMEOUT_S = 10


class Server:
    """A server started on port 0; its address from its 'listening' line."""

    def __init__(self, command, protocol):
        self.log = tempfile.TemporaryFile(mode="w+")  # its stderr, shown if it fails
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + TIMEOUT_S
        self.address = None
        while self.address is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            words = line.split()
            if len(words) == 3 and words[0] == "listening" and words[1] == protocol:
                host, port = words[2].rsplit(":", 1)
                self.address = (host, int(port))
        if self.address is None:
            self.stop()
            self.log.seek(0)
            raise RuntimeError(f"{command[0]}: no 'listening {protocol}' line within "
                               f"{TIMEOUT_S} s\n{self.log.read()}")

    def stop(self):
        self.proc.stdout.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def exchange(protocol, address):
    """The lesson's client: each message sent, its reply read."""
    replies = []
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(TIMEOUT_S)
        if protocol == "tcp":
            s.connect(address)
        for m in MESSAGES:
            if protocol == "tcp":
                s.sendall(m)
                reply = b""
                while len(reply) < len(m):  # a stream: read until the whole echo came
                    chunk = s.recv(1024)
                    if not chunk:
                        break
                    reply += chunk
            else:
                s.sendto(m, address)
                reply = s.recvfrom(1024)[0]
            replies.append(reply)
    return " ".join(repr(r) for r in replies)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()
    echo_blocking = os.path.join(args.build_dir, "bin", "echo_blocking")
    if not os.access(echo_blocking, os.X_OK):
        parser.error(f"{echo_blocking} is missing: build first (bash scripts/run.sh)")

    print(f"{'socketserver class':20s} {'prefork --model':23s} {'proto':5s}  "
          f"{'Python replies':18s}  prefork replies")
    same = True
    for cls, model, protocol in ROWS:
        python = Server([sys.executable, os.path.join(HERE, "socketserver_echo.py"),
                         "--class", cls, "--port", "0"], protocol)
        prefork = None
        try:
            prefork = Server([echo_blocking, "--model", model, "--workers", "1", "--allow-root",
                              f"--{protocol}", "127.0.0.1:0",
                              "--stats", f"side_by_side_{os.getpid()}"], protocol)
            theirs, ours = exchange(protocol, python.address), exchange(protocol, prefork.address)
        finally:
            python.stop()
            if prefork:
                prefork.stop()
        same = same and theirs == ours
        print(f"{cls:20s} {model:23s} {protocol:5s}  {theirs:18s}  {ours}")
    print("the same replies from both, in every row" if same else "the replies differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
