"""The soak's time series: one sample every few seconds of the master's and
each worker's RSS and descriptor count (from /proc) and of the scoreboard's
totals; then the pure bookkeeping the report needs (rows of the table, the
"flat" verdict, the well-behaved clients' phases side by side), which
tests/bench/soak_test.py feeds made-up samples."""

import procfs

MIB = 1024 * 1024

# The verdict's tolerance: the last third of the hostile phase may reach at most the
# first third's maximum plus this much (a fraction of it, or an absolute floor, whichever
# is larger). Memory: a worker's RSS at a sample depends on how many hostile connections
# it holds then, with their buffers, and the kernel hands connections to the workers
# unevenly: in a 3-minute run the largest worker swung between 10 and 16 MiB as they came
# and went (and fell to 6 MiB once they left). Descriptors: the hostile clients reconnect
# all the time, so how many are open at the sampled instant varies by a few. A leak of a
# descriptor per connection, or of a buffer, over thousands of connections is far above
# either.
TOLERANCE = {"rss": (0.25, 4 * MIB), "fds": (0.10, 8)}

# What the verdict looks at: (key of a sample's summary, kind of tolerance, words).
WATCHED = (("worker_rss_max", "rss", "largest worker RSS"),
           ("master_rss", "rss", "master RSS"),
           ("worker_fds_total", "fds", "descriptors of all workers"),
           ("master_fds", "fds", "master descriptors"))

CLOSE_REASONS = ("idle_timeout", "read_timeout", "write_timeout", "limit_exceeded",
                 "peer_reset", "peer_closed")


def parse_rss(status_text):
    """Bytes of VmRSS in the text of /proc/PID/status, or None (a zombie has none)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def read_rss(pid, proc="/proc"):
    try:
        with open(f"{proc}/{pid}/status") as f:
            return parse_rss(f.read())
    except OSError:
        return None


def process_figures(pid):
    """{pid, rss, fds} of a live process, or None when it is gone."""
    rss, fds = read_rss(pid), procfs.descriptor_count(pid)
    return None if rss is None or fds is None else {"pid": pid, "rss": rss, "fds": fds}


def take_sample(t, phase, master_pid, board):
    """One sample: `t` seconds into the run, in `phase`, of the master and of the
    workers the scoreboard `board` (/stats.json) names; None fields when unreadable."""
    master = process_figures(master_pid) or {"rss": None, "fds": None}
    workers = []
    for w in (board or {}).get("workers", []):
        if w.get("pid", 0) > 0:
            got = process_figures(w["pid"])
            if got:
                workers.append(got)
    totals = (board or {}).get("totals", {})
    return {"t": round(t, 1), "phase": phase, "master_rss": master["rss"],
            "master_fds": master["fds"], "workers": workers,
            "closes": dict(totals.get("closes", {})),
            "worker_restarts": totals.get("worker_restarts")}


def summary(sample):
    """The figures of one sample that the table and the verdict use."""
    ws = sample["workers"]
    return {"worker_rss_min": min((w["rss"] for w in ws), default=None),
            "worker_rss_max": max((w["rss"] for w in ws), default=None),
            "worker_fds_total": sum(w["fds"] for w in ws) if ws else None,
            "master_rss": sample["master_rss"], "master_fds": sample["master_fds"]}


def thirds(items):
    """The first and the last third of `items` (at least one each when there are any)."""
    n = max(1, len(items) // 3)
    return items[:n], items[-n:]


def allowed(first_max, kind):
    fraction, floor = TOLERANCE[kind]
    return first_max + max(first_max * fraction, floor)


def compare(first, last, key, kind, words):
    """A check: the maximum of `key` over the summaries `last` against its maximum over
    `first` plus the tolerance of `kind`."""
    a = [r[key] for r in first if r[key] is not None]
    b = [r[key] for r in last if r[key] is not None]
    if not a or not b:
        return {"figure": key, "words": words, "ok": False, "why": "no readings"}
    limit = allowed(max(a), kind)
    return {"figure": key, "words": words, "kind": kind, "first_max": max(a),
            "last_max": max(b), "allowed": limit, "ok": max(b) <= limit}


def verdict(samples, before=(), after=()):
    """Whether RSS and descriptors stay flat over `samples` (those of the hostile phase):
    for each watched figure, the last third's maximum against the first third's maximum
    plus the tolerance. With the samples of the load alone `before` and `after` the
    hostile phase, also whether the descriptors came back: after's maximum against
    before's (memory need not: an allocator keeps what it freed). {"flat": bool or None
    (too few samples), "checks": [...]}."""
    rows = [summary(s) for s in samples]
    if len(rows) < 3:
        return {"flat": None, "checks": [], "samples": len(rows)}
    first, last = thirds(rows)
    checks = [compare(first, last, key, kind, words) for key, kind, words in WATCHED]
    if before and after:
        base, back = [summary(s) for s in before], [summary(s) for s in after]
        checks += [dict(compare(base, back, key, kind, words), back=True)
                   for key, kind, words in WATCHED if kind == "fds"]
    return {"flat": all(c["ok"] for c in checks), "checks": checks, "samples": len(rows)}


def closes_delta(before, after):
    """Connections closed per reason between two samples' scoreboard totals. Counts of
    a killed worker's slot are folded into the totals by the master, so they only grow;
    a negative step (a slot read mid-fold) counts as 0."""
    return {r: max(0, (after.get(r) or 0) - (before.get(r) or 0)) for r in CLOSE_REASONS}


def rows(samples, bucket_s, kills=()):
    """One row per `bucket_s` seconds: its phase(s), min/max of worker RSS, master RSS,
    the workers' total descriptors and the master's, connections closed per reason in
    it, and the workers killed in it (`kills`: times in seconds)."""
    out, previous = [], None
    buckets = {}
    for s in samples:
        buckets.setdefault(int(s["t"] // bucket_s), []).append(s)
    for b in sorted(buckets):
        group = buckets[b]
        sums = [summary(s) for s in group]

        def span(key, pick):
            vals = [x[key] for x in sums if x[key] is not None]
            return pick(vals) if vals else None

        closes = closes_delta(previous["closes"] if previous else group[0]["closes"],
                              group[-1]["closes"])
        phases = []
        for s in group:
            if s["phase"] not in phases:
                phases.append(s["phase"])
        out.append({"from_s": b * bucket_s, "to_s": (b + 1) * bucket_s, "phase": "+".join(phases),
                    "worker_rss_min": span("worker_rss_min", min),
                    "worker_rss_max": span("worker_rss_max", max),
                    "master_rss_max": span("master_rss", max),
                    "worker_fds_min": span("worker_fds_total", min),
                    "worker_fds_max": span("worker_fds_total", max),
                    "master_fds_max": span("master_fds", max),
                    "closes": closes,
                    "kills": sum(1 for k in kills if b * bucket_s <= k < (b + 1) * bucket_s)})
        previous = group[-1]
    return out


def mib(n):
    return "-" if n is None else f"{n / MIB:.1f}"


def table(row_list):
    """The rows as a markdown table."""
    head = ("| from s | phase | worker RSS MiB min–max | master RSS MiB | worker fds (all) "
            "min–max | master fds | closed: idle / read / write timeout, limit, reset | kills |")
    lines = [head, "|" + "---|" * 8]
    for r in row_list:
        c = r["closes"]
        lines.append(
            f"| {r['from_s']:.0f} | {r['phase']} | {mib(r['worker_rss_min'])}–"
            f"{mib(r['worker_rss_max'])} | {mib(r['master_rss_max'])} | "
            f"{none_dash(r['worker_fds_min'])}–{none_dash(r['worker_fds_max'])} | "
            f"{none_dash(r['master_fds_max'])} | {c['idle_timeout']} / {c['read_timeout']} / "
            f"{c['write_timeout']}, {c['limit_exceeded']}, {c['peer_reset']} | {r['kills']} |")
    return "\n".join(lines)


def none_dash(v):
    return "-" if v is None else str(v)


def verdict_text(v):
    """A sentence and a list of the checks of verdict() `v`."""
    if v["flat"] is None:
        return f"**Verdict: not enough samples** ({v['samples']}, at least 3 needed).", []
    word = "flat" if v["flat"] else "NOT flat"
    lines = []
    for c in v["checks"]:
        if "first_max" not in c:
            lines.append(f"- {c['words']}: {c['why']}")
            continue
        show = mib if c["kind"] == "rss" else none_dash
        unit = " MiB" if c["kind"] == "rss" else ""
        first, last = ("load alone before", "after") if c.get("back") else (
            "first third", "last third")
        lines.append(f"- {c['words']}: {first} max {show(c['first_max'])}{unit}, {last} "
                     f"max {show(c['last_max'])}{unit}, allowed {show(int(c['allowed']))}{unit}: "
                     f"{'ok' if c['ok'] else 'GREW'}")
    return (f"**Verdict: {word}** over the hostile phase's {v['samples']} samples"
            + (", and descriptors back after it." if any(c.get("back") for c in v["checks"])
               else "."), lines)


def client_phase(data):
    """What the report compares of one prefork-bench --json run: requests answered,
    errors (total and by kind), success rate, requests the open-loop schedule could not
    send, throughput, latency p50/p99/max in ms. None for no run."""
    if not data:
        return None
    errors = data.get("errors", {})
    n_err = errors.get("total", 0)
    ok = data.get("requests", 0)
    lat = data.get("latency_us", {})
    return {"requests": ok, "errors": n_err,
            "error_kinds": {k: v for k, v in errors.items() if k != "total" and v},
            "success_rate": ok / (ok + n_err) if ok + n_err else None,
            "behind_schedule": data.get("unfinished", {}).get("behind_schedule", 0),
            "starved": data.get("unfinished", {}).get("starved_connections", 0),
            "throughput": data.get("throughput_rps"),
            "p50_ms": ms(lat.get("p50")), "p99_ms": ms(lat.get("p99")),
            "max_ms": ms(lat.get("max"))}


def ms(us):
    return None if us is None else us / 1000.0


def median(values):
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def phase_summary(name, slices):
    """One phase's well-behaved figures from its prefork-bench runs (`slices`, each a
    client_phase() or None for a run without a result): counts summed; p50 and p99 as
    the median over the slices with the p99's range, the spread the notes ask for (a
    percentile cannot be merged across runs without their histograms)."""
    got = [s for s in slices if s]
    out = {"phase": name, "slices": len(slices), "slices_without_result": len(slices) - len(got)}
    for key in ("requests", "errors", "behind_schedule", "starved"):
        out[key] = sum(s[key] for s in got)
    kinds = {}
    for s in got:
        for k, v in s["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    out["error_kinds"] = kinds
    done = out["requests"] + out["errors"]
    out["success_rate"] = out["requests"] / done if done else None
    p99s = [s["p99_ms"] for s in got if s["p99_ms"] is not None]
    out["p50_ms"] = median([s["p50_ms"] for s in got if s["p50_ms"] is not None])
    out["p99_ms"] = median(p99s)
    out["p99_min_ms"] = min(p99s, default=None)
    out["p99_max_ms"] = max(p99s, default=None)
    out["max_ms"] = max((s["max_ms"] for s in got if s["max_ms"] is not None), default=None)
    return out


def latency_comparison(phases, hostile="hostile"):
    """A sentence comparing the hostile phase's median p99 with the phases without hostile
    clients: their median p99s' ratio, and whether it lies within the range of their
    slices' p99s (the machine's noise, measured in the same run)."""
    by = {p["phase"]: p for p in phases}
    h = by.get(hostile)
    calm = [p for p in phases if p["phase"] != hostile and p.get("p99_ms") is not None]
    if not h or h.get("p99_ms") is None or not calm:
        return "No latency comparison: a phase has no result."
    low = min(p["p99_min_ms"] for p in calm)
    high = max(p["p99_max_ms"] for p in calm)
    ratios = ", ".join(f"{h['p99_ms'] / p['p99_ms']:.2f} against {p['phase']}" for p in calm)
    where = ("within" if low <= h["p99_ms"] <= high else
             "above" if h["p99_ms"] > high else "below")
    return (f"Median p99 with hostile clients: {h['p99_ms']:.3f} ms ({ratios}); {where} the "
            f"range of the slices without them, {low:.3f}–{high:.3f} ms.")
