"""The harness's output: a table per scenario on stdout, the JSON document
(--json FILE) and the markdown report (--report FILE)."""

import dataclasses
import json
import os

from benchlib import command_text, cpus_text, loadavg, machine, virtual_text

TCP_COLUMNS = ("sent", "answered", "failed", "refused", "reset", "timeout", "other")


def lost_count(r):
    return r.categories.get("lost", 0) + r.tcp.get("unrecorded", 0)


def status_word(r):
    return {"pass": "PASS", "fail": "FAIL", "unsupported": "unsupported",
            "error": "ERROR"}[r.status]


def scenario_text(r):
    """The human table of one scenario."""
    lines = [f"== {r.name}: {status_word(r)} ({r.seconds:g} s)" + (
        f": {r.reason}" if r.reason else "")]
    if r.tcp:
        lines.append("  TCP requests  " + "  ".join(f"{k} {r.tcp.get(k, 0)}" for k in TCP_COLUMNS))
        cats = ", ".join(f"{k} {v}" for k, v in sorted(r.categories.items())) or "none"
        lines.append(f"  failures by cause: {cats}")
    if r.udp:
        lines.append(f"  UDP datagrams sent {r.udp['sent']}  answered {r.udp['answered']}  "
                     f"timed out {r.udp['timed_out']}  errors {r.udp['errors']}")
    for k, v in r.figures.items():
        lines.append(f"  {k}: {v}")
    for what, ok, detail in r.checks:
        lines.append(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))
    for text in r.lost:
        lines.append(f"  lost: {text}")
    return "\n".join(lines)


def summary_rows(results):
    head = ["scenario", "status", *TCP_COLUMNS, "lost", "UDP sent", "UDP answered",
            "UDP timed out"]
    rows = []
    for r in results:
        t, u = r.tcp, r.udp
        rows.append([r.name, status_word(r), *(str(t.get(k, "-")) if t else "-"
                                              for k in TCP_COLUMNS),
                     str(lost_count(r)) if t else "-",
                     *(str(u.get(k, "-")) if u else "-" for k in ("sent", "answered",
                                                                   "timed_out"))])
    return head, rows


def summary_text(results):
    head, rows = summary_rows(results)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = lambda row: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(head)] + [fmt(row) for row in rows])


def verdict(results):
    """PASS when every scenario that ran passed (unsupported ones are listed apart)."""
    ran = [r for r in results if r.status != "unsupported"]
    return "PASS" if ran and all(r.status == "pass" for r in ran) else "FAIL"


def document(results, settings, argv, build, load_before):
    m = machine(build)
    m["load_average_before"] = load_before
    return {
        "command": command_text(argv),
        "machine": m,
        "load_average_after": loadavg(),
        "settings": {k: v for k, v in dataclasses.asdict(settings).items()
                     if k not in ("logdir",)},
        "verdict": verdict(results),
        "results": [dataclasses.asdict(r) for r in results],
    }


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")


def markdown(doc, results):
    m, s = doc["machine"], doc["settings"]
    out = [
        "# Fault injection: the server under kill -9, SIGTERM, SIGSTOP, descriptor "
        "exhaustion, reload and upgrade",
        "",
        f"`{doc['command']}` (bench/faults/run.py), {m['date']}, commit `{m['commit'][:12]}`.",
        "",
        f"**Verdict: {doc['verdict']}** (" + ("every scenario that ran passed" if
                                               doc["verdict"] == "PASS" else
                                               "a scenario that ran failed") +
        "; unsupported ones need a server feature that is not there yet).",
        "",
        "## Machine and conditions",
        "",
        f"- {cpus_text(m)}{virtual_text(m)}, {m['cpu']}, {m['memory_gib']} GiB RAM, Linux "
        f"{m['kernel']}, {m['os']}, {m['libc']}; built {m['build_type']}.",
        f"- Load average (1, 5, 15 min): {m['load_average_before']} before the run, "
        f"{doc['load_average_after']} after. The load clients (threads in two Python processes) share the "
        "CPUs with the server and with whatever else runs on this machine: no assertion uses "
        "a time, only counts.",
        f"- Load per scenario: {s['keepalive']} keep-alive framed TCP clients, "
        f"{s['per_request']} connection-per-request clients (one every 20 ms each), "
        f"{s['udp']} UDP clients; {s['workers']} workers (kill9: at least 4); fault phase "
        f"{s['fault_s']:g} s, load phases {s['phase_s']:g} s.",
        "",
        "## Summary",
        "",
    ]
    head, rows = summary_rows(results)
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out += ["",
            "Requests are counted by the clients: *sent* is every request begun (a refused "
            "connect counts, as the request it carried), *failed* = refused + reset (ECONNRESET, "
            "EPIPE, or EOF before the whole reply) + timeout + other. *lost* is a failure that "
            "its fault does not explain (bench/faults/attribution.py). What a fault explains: "
            "a connection held by a killed or stopped worker; a request sent after SIGTERM on a "
            "connection the server then closed cleanly, or a connect refused after it; a "
            "reused keep-alive connection closed before any reply byte during a reload or "
            "upgrade; a connection begun during the descriptor flood. UDP is lossy by nature: "
            "counted, never asserted, except that it is answered after each fault.",
            ""]
    for r in results:
        out += [f"## {r.name}: {status_word(r)}", ""]
        if r.reason:
            out += [r.reason, ""]
        if r.tcp:
            out.append("- TCP: " + ", ".join(f"{k} {r.tcp.get(k, 0)}" for k in TCP_COLUMNS))
            out.append("- Failures by cause: " + (", ".join(
                f"{k} {v}" for k, v in sorted(r.categories.items())) or "none"))
        if r.udp:
            out.append(f"- UDP: sent {r.udp['sent']}, answered {r.udp['answered']}, timed out "
                       f"{r.udp['timed_out']}")
        for k, v in r.figures.items():
            out.append(f"- {k}: {v}")
        if r.checks:
            out += ["", "| check | result |", "|---|---|"]
            out += [f"| {cell(what)} | {'ok' if ok else '**FAIL**'}" + (
                f": {cell(detail)}" if detail else "") + " |" for what, ok, detail in r.checks]
        if r.lost:
            out += ["", "First lost requests:", ""] + [f"- {t}" for t in r.lost]
        out.append("")
    return "\n".join(out)


def cell(text):
    """`text` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(path, doc, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(markdown(doc, results))
