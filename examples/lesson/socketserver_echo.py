#!/usr/bin/env python3
"""The lesson's socketserver echo, with the server class as a flag.

The handler is the lesson's, line for line: for TCP a loop over one
connection (recv, upper-case, send, until the client leaves), for UDP one
datagram in, one out. Run it beside build/bin/echo_blocking, which is the
same handler in C++ under prefork's models (docs/guide/06-socketserver.md):

  examples/lesson/socketserver_echo.py --class ThreadingTCPServer
  examples/clients/tcp_client.py hello

It prints "listening tcp HOST:PORT" once bound (as prefork's servers do),
and stops on SIGTERM or Ctrl-C with status 0.
"""

import argparse
import signal
import socketserver
import sys

CLASSES = {
    # class name: (protocol, what runs each request)
    "TCPServer": ("tcp", "one connection at a time, in the server's process"),
    "ThreadingTCPServer": ("tcp", "a new thread per connection"),
    "ForkingTCPServer": ("tcp", "a new process (fork) per connection"),
    "UDPServer": ("udp", "one datagram at a time, in the server's process"),
    "ThreadingUDPServer": ("udp", "a new thread per datagram"),
    "ForkingUDPServer": ("udp", "a new process (fork) per datagram"),
}


class MyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        if isinstance(self.request, tuple):  # UDP: (data, socket)
            data = self.request[0]
            self.request[1].sendto(data.upper(), self.client_address)
            return
        # TCP: the communication loop over one connection
        while True:
            try:
                data = self.request.recv(1024)
                if len(data) == 0:
                    break
                self.request.send(data.upper())
            except ConnectionResetError:
                break


def stop(signum, frame):
    raise KeyboardInterrupt  # leaves serve_forever() in the main thread


def main():
    parser = argparse.ArgumentParser(description="The lesson's socketserver echo server.")
    parser.add_argument("--class", dest="cls", choices=sorted(CLASSES), default="ThreadingTCPServer",
                        help="the socketserver class (default ThreadingTCPServer)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: any free port (default 8080)")
    args = parser.parse_args()

    protocol, how = CLASSES[args.cls]
    server_class = getattr(socketserver, args.cls)
    server_class.allow_reuse_address = True
    server = server_class((args.host, args.port), MyHandler)
    host, port = server.server_address[:2]
    print(f"listening {protocol} {host}:{port}", flush=True)
    print(f"socketserver.{args.cls}: {how}", flush=True)
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
