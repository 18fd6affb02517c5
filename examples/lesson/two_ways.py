#!/usr/bin/env python3
"""The lesson's two ways to write a process, under Python's two ways to start one.

Ways to write it (the lesson): a function given as Process(target=f), or a
subclass of Process that overrides run(). Ways to start it (multiprocessing's
start methods): "fork", a copy of the running parent, which sees the parent's
memory as it was at the fork; "spawn", a new interpreter that imports this
module again from the start, so it sees what the module sets at import and
nothing the parent changed afterwards. prefork's counterparts: a handler
function or a Handler subclass; --start fork or --start spawn
(docs/guide/02-processes.md).

  examples/lesson/two_ways.py --start fork --way function
  examples/lesson/two_ways.py --start spawn --way subclass
"""

import argparse
import multiprocessing
import os
import sys

counter = 10  # set when the module is imported: by the parent, and again by a spawned child


def task(name):
    print(f"child   {name}: pid {os.getpid()}, ppid {os.getppid()}, counter {counter}", flush=True)


class Task(multiprocessing.Process):
    def __init__(self, name):
        super().__init__()
        self.task_name = name

    def run(self):
        task(self.task_name)


def main():
    global counter
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", choices=["fork", "spawn"], default="fork",
                        help="multiprocessing's start method (default fork)")
    parser.add_argument("--way", choices=["function", "subclass"], default="function",
                        help="Process(target=f) or a Process subclass (default function)")
    args = parser.parse_args()

    multiprocessing.set_start_method(args.start)
    counter = 11  # after the import: a forked child sees it, a spawned one does not
    print(f"parent  pid {os.getpid()}, counter {counter} (10 at import, then set to 11)",
          flush=True)
    if args.way == "function":
        p = multiprocessing.Process(target=task, args=("Process(target=task)",))
    else:
        p = Task("Task(Process).run()")
    p.start()
    p.join()
    print(f"parent  child {p.pid} exited with status {p.exitcode}; start method {args.start}: "
          + ("the child was a copy of this process" if args.start == "fork" else
             "the child was a new interpreter that imported this module again"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
