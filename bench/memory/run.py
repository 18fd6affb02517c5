#!/usr/bin/env python3
"""A worker's resident memory after bursts of large messages, idle, stalled
and never-reading clients (issue 10). Logic: memory.py. Prints a Markdown
table; bench/results/memory.md holds a run.

  python3 bench/memory/run.py [--build build] [--connections 200] [--size 1048576]
      [--models event,thread-per-connection]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memory  # noqa: E402

PHASES = ["baseline", "idle_after_burst", "after_close", "stalled", "after_stalled",
          "never_reading", "after_never_reading"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--size", type=int, default=memory.MiB)
    parser.add_argument("--max-message", type=int, default=memory.MiB)
    parser.add_argument("--models", default="event,thread-per-connection")
    args = parser.parse_args()
    exe = os.path.join(args.build, "bin", "upper_server")
    rows = [memory.run(exe, m, args.connections, args.size, args.max_message)
            for m in args.models.split(",")]
    print(f"{args.connections} connections, frames of {args.size} bytes, "
          f"--max-message {args.max_message}; worker VmRSS in MB\n")
    print("| phase | " + " | ".join(r["model"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for phase in PHASES:
        print(f"| {phase} | " + " | ".join(f"{r[phase] / 1e6:.1f}" for r in rows) + " |")


if __name__ == "__main__":
    main()
