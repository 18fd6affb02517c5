#!/usr/bin/env python3
"""Process-creation cost and worker replacement time: runs spawn-cost and
writes spawn.md (tables, explanation), spawn.png (gnuplot) and spawn.json.

Builds nothing: build first (cmake -S . -B build && cmake --build build -j2).
Full run: writes bench/results/. --quick: a smoke run into --out DIR or a new
temporary directory, so committed results are never overwritten.
"""

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (cpu_times, cpu_word, cpus_text, loadavg, machine,  # noqa: E402
                      machine_text, virtual_text)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["fork", "fork+exec", "vfork+exec", "posix_spawn", "boost_process_v2", "pthread_create"]
COLORS = ["#d62728", "#ff7f0e", "#2ca02c", "#17becf", "#9467bd", "#1f77b4"]
PTS = [7, 5, 9, 11, 13, 15]
STAGES = [("death_to_exited_us", "old worker has exited"),
          ("death_to_started_us", "new worker's code runs"),
          ("started_to_ready_us", "(its set-up: code runs → ready)"),
          ("death_to_ready_us", "replacement ready"),
          ("death_to_served_us", "first reply served")]  # filled circle, square, triangles, diamond, pentagon
TARGET_P99_US = 5000.0  # "a worker replaced within 5 ms (p99) of its death in fork mode"


def say(text):
    print("bench/spawn: " + text, file=sys.stderr, flush=True)


def ordinal(n):
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def run_measured(command, timeout_s):
    """run_json, plus how busy the machine was meanwhile."""
    load_before, before = loadavg()[0], cpu_times()
    result = run_json(command, timeout_s)
    after = cpu_times()
    total = max(after[0] - before[0], 1)
    result["conditions"] = {
        "busy_pct": 100.0 * (total - (after[1] - before[1])) / total,
        "steal_pct": 100.0 * (after[2] - before[2]) / total,
        "load_before": load_before,
        "load_after": loadavg()[0],
    }
    return result


def run_json(command, timeout_s):
    """Runs one spawn-cost command; its stderr (progress, tables) passes through.
    On a timeout it is stopped by its pid: SIGTERM (it cleans up), then SIGKILL."""
    say("running " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in command))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise SystemExit(f"bench/spawn: {command[0]} took longer than {timeout_s} s: stopped")
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        raise
    if proc.returncode != 0:
        raise SystemExit(f"bench/spawn: {' '.join(command)} failed (exit status {proc.returncode})")
    return json.loads(out)


def fmt(value):
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def size_text(nbytes):
    return f"{nbytes / 1048576:g} MiB" if nbytes >= 1048576 else f"{nbytes / 1024:g} KiB"


def point(results, method, mib):
    for r in results:
        if r["method"] == method and r["region_mib"] == mib:
            return r
    return None


def ex_kind(data, kind):
    for run in data["exec_targets"]:
        if run["exec_target"]["kind"] == kind:
            return run["results"][0]
    return None


def ratio(a, b):
    return a / b if a and b else float("nan")


def plot(results, sizes, out_dir, png, m):
    """latency vs parent RSS per method, log-log, two panels; False without gnuplot."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        say("gnuplot is missing (Debian: apt-get install -y gnuplot-nox): "
            "writing the tables without the plot")
        return False
    with tempfile.TemporaryDirectory(prefix="spawn-plot.") as tmp:
        series = []
        for i, method in enumerate(METHODS):
            rows = [point(results, method, mib) for mib in sizes]
            rows = [r for r in rows if r]
            if not rows:
                continue
            path = os.path.join(tmp, f"{i}.dat")
            with open(path, "w") as f:
                for r in rows:
                    start = r["start_us"]["median"] if r["start_us"] else "NaN"
                    f.write(f'{r["rss_mib"]} {r["reap_us"]["median"]} {start}\n')
            series.append((path, method, COLORS[i], i + 1))
        script = [
            'set terminal pngcairo size 1400,600 font "DejaVu Sans,11" noenhanced',
            f'set output "{png}"',
            "set logscale xy 10",
            "set xrange [1:2000]",
            "set grid xtics ytics mxtics mytics lc rgb '#dddddd'",
            'set xlabel "parent resident set (MiB; pages written, 4 KiB pages)"',
            'set ylabel "median latency (µs, log scale)"',
            "set key top left box opaque",
            "set format y '%g'",
            'set multiplot layout 1,2 title "Process creation cost vs parent size '
            f'(spawn-cost, medians; {machine_text(m)})"',
        ]
        for column, title in ((2, "call until the child is reaped (waitpid / pthread_join)"),
                              (3, "call until the child runs (its first stamp)")):
            script.append(f'set title "{title}"')
            plots = [f'"{p}" using 1:{column} with linespoints lw 2 ps 1.3 pt {PTS[k - 1]} '
                     f'lc rgb "{c}" title "{m}"' for p, m, c, k in series]
            script.append("plot " + ", ".join(plots))
        script.append("unset multiplot")
        result = subprocess.run([gnuplot], input="\n".join(script) + "\n", text=True,
                                capture_output=True, timeout=60)
        if result.returncode != 0:
            say("gnuplot failed: " + result.stderr.strip())
            return False
    return True


def write_markdown(path, data, plotted, quick, command):
    m = data["machine"]
    creation = data["creation"]
    results = creation["results"]
    sizes = sorted({r["region_mib"] for r in results})
    target = creation["exec_target"]
    lines = []
    add = lines.append
    add("# Process creation cost")
    add("")
    add(f"Generated by `{command}` on {m['date']}; raw numbers in `spawn.json`."
        + (" **Quick smoke run: few iterations, not for conclusions.**" if quick else ""))
    add("")
    add("## Machine")
    add("")
    add(f"- {cpus_text(m)} (nproc), {m['cpu']}, {m['memory_gib']} GiB RAM, Linux {m['kernel']}, "
        f"{m['os']}, {m['libc']}; spawn-cost built {m['build_type']}.")
    add(f"- **{cpus_text(m)}**{virtual_text(m)}: absolute times drift between runs and "
        "machines. The ratios "
        "measured within one run are what count: the methods are interleaved "
        "(A B C … A B C …) at every size, so drift falls on all of them alike.")
    c = creation.get("conditions")
    if c:
        add(f"- During the creation runs the vCPUs were {c['busy_pct']:.0f}% busy (this benchmark "
            f"included), {c['steal_pct']:.1f}% stolen by the hypervisor; load average "
            f"{c['load_before']} → {c['load_after']}.")
    add(f"- Transparent huge pages: `{m['transparent_hugepage']}`; the parent's region refuses "
        "them (`MADV_NOHUGEPAGE`) except in the huge-page row below.")
    add("")
    add("## What was measured")
    add("")
    add(f"`spawn-cost` maps a region of N MiB (`mmap`, private anonymous) and writes one byte in "
        f"every 4 KiB page, so the parent's resident set and page tables grow by N MiB. Then, "
        f"{creation['iterations']} rounds per size (after {creation['warmup']} uncounted; fewer if "
        f"a size exceeds {creation['budget_s']} s), each method in turn:")
    add("")
    add("- **reaped**: from just before the call until `waitpid` returns (`pthread_join` for the "
        "thread). The child does nothing: `fork`'s child calls `_exit(0)` at once; the exec "
        "methods run a program that returns at once.")
    add("- **running**: from just before the call until the child's first act, which reads "
        "`CLOCK_MONOTONIC` and sends the stamp through a pipe (so the parent's own wake-up is "
        "not counted). For the exec methods that is the first line of the new program's `main()`.")
    add(f"- Exec target: `{os.path.basename(target['path'])}` ({target['kind']}): a few lines of "
        "C++, statically linked, so an exec pays for a new image and no dynamic loading. The "
        "exec-target table below compares it with a dynamic program.")
    add("- Methods: `fork` (no exec); `fork+exec` (`fork`, then `execve` in the child); "
        "`vfork+exec`; `posix_spawn` (glibc); `boost_process_v2` (a "
        "`boost::process::v2::process` from the default launcher, then `wait()`); "
        "`pthread_create` + `pthread_join`, the floor.")
    add("- Percentiles are nearest-rank; all times in µs.")
    add("")
    for key, title in (("reap_us", "Median µs from the call until the child is reaped"),
                       ("start_us", "Median µs from the call until the child runs")):
        add(f"## {title}")
        add("")
        add("| method | " + " | ".join(f"{s} MiB" for s in sizes) + f" | {sizes[-1]} MiB / {sizes[0]} MiB |")
        add("|---|" + "---:|" * (len(sizes) + 1))
        for method in METHODS:
            row = [point(results, method, s) for s in sizes]
            vals = [r[key]["median"] if r and r[key] else None for r in row]
            growth = ratio(vals[-1], vals[0]) if vals[0] and vals[-1] else None
            add(f"| {method} | " + " | ".join(fmt(v) for v in vals) + " | "
                + (f"{growth:.1f}×" if growth else "–") + " |")
        add("")
    if plotted:
        add("![Latency vs parent resident set, per method, log-log](spawn.png)")
        add("")
        add("`spawn.png`: medians; left until reaped, right until running; both axes logarithmic.")
    else:
        add("*No plot: gnuplot was missing when this was generated "
            "(Debian: `apt-get install -y gnuplot-nox`).*")
    add("")
    add("### Full distributions")
    add("")
    add("| method | region MiB | parent RSS MiB | n | reaped median | p90 | p99 | min | max "
        "| running median | p90 | p99 | min | max |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mib in sizes:
        for method in METHODS:
            r = point(results, method, mib)
            if not r:
                continue
            re_, st = r["reap_us"], r["start_us"]
            st_cols = [fmt(st[k]) for k in ("median", "p90", "p99", "min", "max")] if st else ["–"] * 5
            add(f"| {method} | {mib} | {r['rss_mib']:.0f} | {re_['n']} | "
                + " | ".join(fmt(re_[k]) for k in ("median", "p90", "p99", "min", "max")) + " | "
                + " | ".join(st_cols) + " |")
    add("")

    # Exec targets: posix_spawn of the static helper, of a dynamic C++ program, of /bin/true.
    add("## Exec target (posix_spawn, 1 MiB region)")
    add("")
    add("| target | kind | n | reaped median | p90 | p99 | running median | p90 | p99 |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in data["exec_targets"]:
        t = run["exec_target"]
        for r in run["results"]:
            re_, st = r["reap_us"], r["start_us"]
            st_cols = [fmt(st[k]) for k in ("median", "p90", "p99")] if st else ["–"] * 3
            shown = t["path"] if t["kind"] == "program" else os.path.basename(t["path"])
            add(f"| `{shown}` "
                f"| {t['kind']} | {re_['n']} | "
                + " | ".join(fmt(re_[k]) for k in ("median", "p90", "p99")) + " | "
                + " | ".join(st_cols) + " |")
    add("")
    add("`spawn-cost --child-exit` is this benchmark's own binary (C++, dynamically linked "
        "against libstdc++, libm, libgcc_s, libc; its `main()` returns before doing anything); "
        "`/bin/true` links libc only and cannot send a stamp.")
    add("")

    huge = data["huge_pages"]
    hp_mib = huge["results"][0]["region_mib"]
    add(f"## Huge pages ({hp_mib} MiB region)")
    add("")
    add("| method | pages | n | reaped median | p90 | p99 | running median |")
    add("|---|---|---:|---:|---:|---:|---:|")
    for r in huge["results"]:
        small = point(results, r["method"], hp_mib)
        if small:
            add(f"| {r['method']} | 4 KiB (from the main run) | {small['reap_us']['n']} | "
                + " | ".join(fmt(small["reap_us"][k]) for k in ("median", "p90", "p99"))
                + f" | {fmt(small['start_us']['median'])} |")
        add(f"| {r['method']} | transparent huge pages (`MADV_HUGEPAGE`) | {r['reap_us']['n']} | "
            + " | ".join(fmt(r["reap_us"][k]) for k in ("median", "p90", "p99"))
            + f" | {fmt(r['start_us']['median'])} |")
    add("")

    add("## Worker replacement (upper_server, one worker)")
    add("")
    rep = data["replace"]
    add(f"`spawn-cost replace` starts `upper_server --framed 127.0.0.1:0 --workers 1 --start MODE`, "
        "waits until its worker is `ready` on the scoreboard, then repeatedly `kill(worker, "
        "SIGKILL)` and spin-polls (10 µs sleeps): **ready** is until the scoreboard shows a new "
        "pid in state ready; **served** is until the reply to a frame sent right after the kill "
        "arrives (the connection waits in the listen backlog, which the master keeps open, until "
        "the replacement accepts it). Both from just before `kill()`. Between kills it waits "
        f"{rep['fork']['settle_ms']} ms after the replacement is ready: the master treats a worker "
        "dying within 1 s of its start as failing to start and backs off, which is not what is "
        f"measured here. The client, the master and the worker share the {cpus_text(m)}.")
    add("")
    add("| start mode | from just before kill() until | n | median | p90 | p99 | max |")
    add("|---|---|---:|---:|---:|---:|---:|")
    for mode in ("fork", "spawn"):
        for key, stage in STAGES:
            st = rep[mode][key]
            add(f"| {mode} | {stage} | {st['n']} | "
                + " | ".join(fmt(st[k]) for k in ("median", "p90", "p99", "max")) + " |")
    add("")
    for mode in ("fork", "spawn"):
        c = rep[mode].get("conditions")
        if c:
            add(f"- {mode} mode: {rep[mode]['worker_restarts']} restarts, "
                f"{rep[mode]['delayed_restarts']} delayed by the master's backoff; during the run "
                f"the vCPUs were {c['busy_pct']:.0f}% busy (this benchmark included), "
                f"{c['steal_pct']:.1f}% stolen by the hypervisor, load average "
                f"{c['load_before']} → {c['load_after']}.")
    add("- **exited**: a pidfd of the old worker turns readable (it is a zombie: memory torn "
        "down, SIGCHLD sent). **code runs**: the new worker's own `started_ns` stamp, written "
        "first thing in its run loop. **set-up**: from that stamp to `ready`, per replacement. "
        "Stages seen by polling are late by up to one poll turn (tens of µs).")
    add("")
    f_ready, f_served = rep["fork"]["death_to_ready_us"], rep["fork"]["death_to_served_us"]
    f_setup = rep["fork"]["started_to_ready_us"]
    met = f_ready["p99"] <= TARGET_P99_US
    verdict = (f"**Target — a worker replaced within 5 ms (p99) of its death in fork mode: "
               f"{'met' if met else 'NOT met'}.** In fork mode the replacement was ready "
               f"{fmt(f_ready['median'])} µs after the kill at the median, {fmt(f_ready['p99'])} µs "
               f"at p99 (max {fmt(f_ready['max'])} µs); the first request was answered after "
               f"{fmt(f_served['median'])} µs median, {fmt(f_served['p99'])} µs p99 "
               f"({'also' if f_served['p99'] <= TARGET_P99_US else 'also not'} within 5 ms), over "
               f"{f_ready['n']} replacements.")
    if quick:
        verdict += " (Quick run: too few replacements for a p99.)"
    if f_setup["p99"] > 10 * f_setup["median"]:
        c = rep["fork"].get("conditions") or {"steal_pct": 0.0, "load_before": "?", "load_after": "?"}
        verdict += (f" The tail is not the work of replacing: the worker's own set-up takes "
                    f"{fmt(f_setup['median'])} µs at the median but {fmt(f_setup['p99'])} µs at "
                    "p99, so the stalls that make the tail hit every stage, even this one: a "
                    f"{cpu_word(m)} busy with another task (load average "
                    f"{c['load_before']} → {c['load_after']} during the run) or taken by the "
                    f"hypervisor (steal {c['steal_pct']:.1f}%). "
                    f"With {f_ready['n']} samples, p99 is the "
                    f"{ordinal(math.ceil(0.99 * f_ready['n']))} smallest: one or two stalls "
                    "decide it.")
    add(verdict)
    add("")

    # Explanation, with this run's numbers.
    def med(method, mib, key="reap_us"):
        r = point(results, method, mib)
        return r[key]["median"] if r and r[key] else None

    lo, hi = sizes[0], sizes[-1]
    hp_fork = [r for r in huge["results"] if r["method"] == "fork"][0]
    hp_small, hp_huge = med("fork", hp_mib), hp_fork["reap_us"]["median"]
    static = ex_kind(data, "static helper") or ex_kind(data, "helper (dynamic: no static libc here)")
    fork_lo, fork_hi = med("fork", lo), med("fork", hi)
    pages_hi = hi * 256
    add("## Why")
    add("")
    add(f"- **fork grows with the parent's resident memory** ({fmt(fork_lo)} µs at {lo} MiB, "
        f"{fmt(fork_hi)} µs at {hi} MiB, {ratio(fork_hi, fork_lo):.0f}×). `fork()` copies no "
        "pages: memory is shared copy-on-write. It copies the page tables instead: one 8-byte "
        f"entry per resident 4 KiB page, {pages_hi:,} entries ({size_text(pages_hi * 8)} "
        f"of tables) for {hi} MiB, raising each page's reference count and write-protecting the "
        "parent's entry too. What counts is the pages touched: an untouched mapping has no "
        "entries to copy. The child's exit then tears the same entries down, which `reaped` "
        "includes. With transparent huge pages one page-middle-directory entry maps 2 MiB, "
        f"so there are 512 times fewer entries: fork of the {hp_mib} MiB parent fell from "
        f"{fmt(hp_small)} µs to {fmt(hp_huge)} µs (huge-page table, a separate run). The later cost of copy-on-write (a page fault and a 4 KiB "
        "copy per page either side writes) is not in these numbers.")
    flat = all(ratio(med(x, hi), med(x, lo)) < 2 for x in ("vfork+exec", "posix_spawn"))
    add(f"- **vfork and posix_spawn {'stay flat' if flat else 'should stay flat'}** "
        + ("" if flat else "(not in this run: see how busy the machine was, above) ") + f"(posix_spawn: {fmt(med('posix_spawn', lo))} µs at "
        f"{lo} MiB, {fmt(med('posix_spawn', hi))} µs at {hi} MiB). `vfork()` shares the parent's "
        "address space (`CLONE_VM`) and suspends the parent until the child execs or exits "
        "(`CLONE_VFORK`): nothing is copied. glibc's `posix_spawn` does the same with "
        "`clone(CLONE_VM|CLONE_VFORK)` on a stack of its own, so it is vfork's speed without "
        "vfork's hazards. `fork+exec` pays fork's copy and then throws it away at the exec: "
        f"{fmt(med('fork+exec', hi))} µs at {hi} MiB against posix_spawn's "
        f"{fmt(med('posix_spawn', hi))} µs ({ratio(med('fork+exec', hi), med('posix_spawn', hi)):.0f}×).")
    dyn = ex_kind(data, "this binary --child-exit")
    add(f"- **exec costs a new address space**: at {lo} MiB, `posix_spawn` takes "
        f"{fmt(med('posix_spawn', lo))} µs to a reaped static child against "
        f"{fmt(med('fork', lo))} µs for a bare fork and {fmt(med('pthread_create', lo))} µs for "
        "a thread: `execve` opens and maps the program, builds a fresh memory map, stack and "
        "auxiliary vector, and the new image faults its pages in; at exit it is all torn down. "
        "A dynamically linked program also runs the loader first: "
        + (f"the same spawn of the dynamic `spawn-cost --child-exit` takes "
           f"{fmt(dyn['reap_us']['median'])} µs to reaped and {fmt(dyn['start_us']['median'])} µs "
           f"until its `main()` runs, against {fmt(static['reap_us']['median'])} and "
           f"{fmt(static['start_us']['median'])} µs for the static helper in the same table: finding, mapping and relocating libstdc++, libm, libgcc_s and libc "
           "and running their constructors." if dyn else "see the exec-target table."))
    add(f"- **Boost.Process v2 adds its own work on top of fork+exec** ({fmt(med('boost_process_v2', lo))} "
        f"µs against {fmt(med('fork+exec', lo))} µs at {lo} MiB; {fmt(med('boost_process_v2', hi))} "
        f"µs at {hi} MiB). Its default launcher on Linux uses `fork()`, not vfork, so it grows "
        "with the parent like fork+exec. Per child it also creates a pipe for the child's exec "
        "error and blocks reading it until the exec closes it, notifies the io_context of the "
        "fork (before, in the parent, in the child), builds the argv vector, closes every "
        "descriptor not whitelisted with `close_range()` in the child, and opens a pidfd for "
        "the process object (registered with the io_context). That is why prefork's spawn "
        "mode costs more than a plain posix_spawn would.")
    add(f"- **pthread_create is the floor** ({fmt(med('pthread_create', lo))} µs reaped at {lo} "
        f"MiB, {fmt(med('pthread_create', hi))} µs at {hi} MiB): a thread shares the address space and descriptor table, so "
        "there is nothing to copy or build but a stack (cached by glibc after the first join) "
        "and a task.")
    sp_ready = rep["spawn"]["death_to_ready_us"]
    f_exit, f_code = rep["fork"]["death_to_exited_us"], rep["fork"]["death_to_started_us"]
    s_code = rep["spawn"]["death_to_started_us"]
    add(f"- **Replacement** (medians): the killed worker takes {fmt(f_exit['median'])} µs to be "
        "gone (woken from `epoll_wait`, its memory and descriptors released). The master learns "
        "of it by SIGCHLD (its signal pipe wakes `poll`), reaps, folds the slot's counters, logs "
        "and starts the slot again with no delay. In fork mode the master's own image is small, "
        f"so its fork is cheap: the new worker's code runs {fmt(f_code['median'])} µs after the "
        f"kill and is ready at {fmt(f_ready['median'])} µs. In spawn mode the master forks and "
        "execs through Boost.Process the dynamically linked `upper_server`, which loads its "
        "libraries, finds its listeners (`LISTEN_FDS`) and attaches the scoreboard before its "
        f"run loop: code runs at {fmt(s_code['median'])} µs, ready at "
        f"{fmt(sp_ready['median'])} µs ({ratio(sp_ready['median'], f_ready['median']):.1f}× fork "
        "mode). The first reply comes just after `ready`: the new worker's first `epoll_wait` "
        "finds the queued connection at once. The master here holds a few MiB; a master "
        "holding more would add fork's growth above to every restart, in both modes (Boost's "
        "launcher forks too).")
    add("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(
        prog="bench/spawn",
        description="Process creation cost and worker replacement: runs spawn-cost, writes "
                    "spawn.md, spawn.png and spawn.json.")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"),
                        help="the build directory with bin/spawn-cost and bin/upper_server (default build/)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: few sizes and iterations; writes to --out or a temp dir")
    parser.add_argument("--out", help="where to write (default bench/results/, or a temp dir with --quick)")
    parser.add_argument("--iterations", type=int, default=200, help="creation rounds per size (default 200)")
    parser.add_argument("--replace-iterations", type=int, default=100,
                        help="replacements per start mode (default 100; about 1.1 s each)")
    args = parser.parse_args()
    if args.iterations < 1 or args.replace_iterations < 1:
        parser.error("iteration counts must be positive")

    build = os.path.abspath(args.build)
    bin_dir = os.path.join(build, "bin")
    spawn_cost = os.path.join(bin_dir, "spawn-cost")
    server = os.path.join(bin_dir, "upper_server")
    for program in (spawn_cost, os.path.join(bin_dir, "spawn-cost-child"), server):
        if not os.access(program, os.X_OK):
            sys.exit(f"bench/spawn: {program} is missing: build first "
                     f"(cmake -S . -B {args.build} && cmake --build {args.build} -j2)")
    if args.out:
        out_dir = os.path.abspath(args.out)
    elif args.quick:
        out_dir = tempfile.mkdtemp(prefix="spawn-bench.")
    else:
        out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)

    quick = ["--quick"] if args.quick else []
    iterations = [] if args.quick else ["--iterations", str(args.iterations)]
    data = {"machine": machine(build), "quick": args.quick}
    data["creation"] = run_measured([spawn_cost, "--json", *quick, *iterations, "--budget", "60"], 1800)
    small = "10" if args.quick else "100"
    data["exec_targets"] = [
        run_json([spawn_cost, "--json", "--methods", "posix_spawn", "--sizes", "1",
                  "--iterations", small, "--exec", target], 300)
        for target in ("helper", "self", "/bin/true")
    ]
    data["huge_pages"] = run_json(
        [spawn_cost, "--json", "--methods", "fork,fork+exec", "--thp", "--sizes",
         "64" if args.quick else "1024", "--iterations", small], 600)
    replace_n = [] if args.quick else ["--iterations", str(args.replace_iterations)]
    data["replace"] = {
        mode: run_measured([spawn_cost, "replace", "--server", server, "--mode", mode, "--json",
                        *quick, *replace_n], 60 + 6 * (20 if args.quick else args.replace_iterations))
        for mode in ("fork", "spawn")
    }

    with open(os.path.join(out_dir, "spawn.json"), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    sizes = sorted({r["region_mib"] for r in data["creation"]["results"]})
    png = os.path.join(out_dir, "spawn.png")
    plotted = plot(data["creation"]["results"], sizes, out_dir, png, data["machine"])
    command = "bench/spawn" + (" --quick" if args.quick else "")
    write_markdown(os.path.join(out_dir, "spawn.md"), data, plotted, args.quick, command)
    say(f"wrote {out_dir}/spawn.md, spawn.json" + (", spawn.png" if plotted else " (no plot)"))


if __name__ == "__main__":
    main()
