#!/usr/bin/env python3
"""How long the master takes to replace a SIGKILLed worker, idle and while
its --metrics endpoint is flooded (issue 10: "the master never waits on a
client"): a slowloris (200 connections that never finish a request head)
and 32 clients scraping /metrics back to back. The replacement is timed
from the kill to a new pid ready in the scoreboard (prefork-top --json,
polled: a few ms of resolution). Results: bench/results/metrics_flood.{md,json}.

  python3 bench/metrics_flood/run.py [--build build] [--workers 64] [--kills 10]
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402


def snapshot(top, name):
    out = subprocess.run([top, "--json", "--once", name], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def ready_pids(doc):
    return {w["pid"] for w in doc["workers"] if w["state"] == "ready" and w["pid"] > 0}


def replacement_ms(top, name, workers):
    doc = snapshot(top, name)
    victim = sorted(ready_pids(doc))[0]
    start = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    while time.monotonic() - start < 30:
        doc = snapshot(top, name)
        pids = ready_pids(doc) if doc else set()
        if victim not in pids and len(pids) == workers:
            return (time.monotonic() - start) * 1000
    return float("inf")


def slow_connection(host, port):
    s = socket.create_connection((host, port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
    s.setblocking(False)
    return s


def flood(host, port, stop, counts):
    slow = [slow_connection(host, port) for _ in range(200)]

    def keep_slow():  # the server drops them after 5 s: opened again
        while not stop.wait(0.5):
            for i, s in enumerate(slow):
                try:
                    if s.recv(1) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                s.close()
                slow[i] = slow_connection(host, port)

    def scraper():
        while not stop.is_set():
            try:
                with socket.create_connection((host, port), timeout=10) as s:
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n")
                    while s.recv(65536):
                        pass
                counts["scrapes"] += 1
            except OSError:
                counts["failed"] += 1
    threads = [threading.Thread(target=scraper, daemon=True) for _ in range(32)]
    threads.append(threading.Thread(target=keep_slow, daemon=True))
    for t in threads:
        t.start()
    return slow, threads


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    bins = os.path.join(args.build, "bin")
    top = os.path.join(bins, "prefork-top")
    name = f"prefork_bench_flood_{os.getpid()}"
    server = subprocess.Popen(
        [os.path.join(bins, "upper_server"), "--allow-root", "--workers", str(args.workers),
         "--framed", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--stats", name],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        host = port = None
        for line in server.stdout:
            if line.startswith("listening metrics "):
                host, port = line.split()[2].rsplit(":", 1)
                break
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            doc = snapshot(top, name)
            if doc and len(ready_pids(doc)) == args.workers:
                break
            time.sleep(0.1)
        m = benchlib.machine(args.build)
        results = {"machine": m, "workers": args.workers}
        results["idle_ms"] = [replacement_ms(top, name, args.workers) for _ in range(args.kills)]
        stop, counts = threading.Event(), {"scrapes": 0, "failed": 0}
        slow, threads = flood(host, int(port), stop, counts)
        time.sleep(1)
        began, scrapes_before = time.monotonic(), counts["scrapes"]
        results["flooded_ms"] = [replacement_ms(top, name, args.workers) for _ in range(args.kills)]
        rate = (counts["scrapes"] - scrapes_before) / (time.monotonic() - began)
        stop.set()
        for t in threads:
            t.join(15)
        for s in slow:
            s.close()
        results["scrapes_per_s_during_flood"] = round(rate, 1)
        results["failed_scrapes"] = counts["failed"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    out = os.path.join(benchlib.RESULTS, "metrics_flood")
    with open(out + ".json", "w") as f:
        json.dump(results, f, indent=2)

    def line(label, values):
        return (f"| {label} | {statistics.median(values):.0f} | {max(values):.0f} |")
    with open(out + ".md", "w") as f:
        f.write(f"""# The master's supervision while /metrics is flooded

`python3 bench/metrics_flood/run.py --workers {args.workers} --kills {args.kills}` on a
{benchlib.machine_text(m)} ({benchlib.cpus_text(m)}, {m['cpu']}, {m['memory_gib']} GiB,
{m['os']}, kernel {m['kernel']}, {m['build_type']} build, commit {m['commit']},
{m['date']}, load average before {m['load_average_before']}).

Time from SIGKILL of a worker to a new worker ready in the scoreboard
(polled with prefork-top: includes a few ms of polling), {args.kills} kills each,
upper_server with {args.workers} workers. Flooded: 200 connections that never finish
their request head (opened again when the server drops them), plus 32 clients scraping /metrics back to back
({results['scrapes_per_s_during_flood']} scrapes/s answered meanwhile,
{results['failed_scrapes']} failed).

| endpoint | median ms | max ms |
|---|---|---|
{line("idle", results["idle_ms"])}
{line("flooded", results["flooded_ms"])}
""")
    print(open(out + ".md").read())


if __name__ == "__main__":
    main()
