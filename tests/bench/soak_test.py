#!/usr/bin/env python3
"""Unit test of the soak's bookkeeping (bench/soak/series.py): the "flat"
verdict over RSS and descriptor samples, the table's rows, the /proc and
prefork-bench figures it reads. Fed made-up samples: no server runs here.
  usage: soak_test.py [unittest options]"""

import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "soak"))
sys.path.insert(1, os.path.join(ROOT, "bench", "faults"))

import series  # noqa: E402

MIB = series.MIB


def sample(t, worker_rss=(8 * MIB, 9 * MIB), worker_fds=(20, 22), master_rss=11 * MIB,
           master_fds=13, phase="hostile", closes=None):
    return {"t": t, "phase": phase, "master_rss": master_rss, "master_fds": master_fds,
            "workers": [{"pid": 100 + i, "rss": r, "fds": f}
                        for i, (r, f) in enumerate(zip(worker_rss, worker_fds))],
            "closes": closes or {}, "worker_restarts": 0}


def steady(n=9, **kw):
    return [sample(5.0 * i, **kw) for i in range(n)]


def check(v, figure):
    return next(c for c in v["checks"] if c["figure"] == figure)


class Verdict(unittest.TestCase):
    def test_steady_figures_are_flat(self):
        v = series.verdict(steady())
        self.assertTrue(v["flat"])
        self.assertEqual(len(v["checks"]), len(series.WATCHED))
        self.assertEqual(check(v, "worker_fds_total")["last_max"], 42)

    def test_growing_worker_rss_is_not_flat(self):
        s = steady(6) + [sample(30 + i, worker_rss=(8 * MIB, (16 + i) * MIB)) for i in range(3)]
        v = series.verdict(s)
        self.assertFalse(v["flat"])
        self.assertFalse(check(v, "worker_rss_max")["ok"])
        self.assertTrue(check(v, "master_rss")["ok"])

    def test_leaking_descriptors_are_not_flat(self):
        s = steady(6) + [sample(30 + i, worker_fds=(20, 40 + i)) for i in range(3)]
        v = series.verdict(s)
        self.assertFalse(v["flat"])
        self.assertFalse(check(v, "worker_fds_total")["ok"])

    def test_growth_within_the_tolerance_is_flat(self):
        # 9 MiB + max(25%, 4 MiB) = 13 MiB allowed; 42 fds + max(4.2, 8) = 50 allowed
        s = steady(6) + [sample(30, worker_rss=(8 * MIB, 13 * MIB), worker_fds=(20, 30))]
        s += steady(2)
        self.assertTrue(series.verdict(s)["flat"])
        self.assertEqual(check(series.verdict(s), "worker_rss_max")["allowed"], 13 * MIB)
        self.assertEqual(check(series.verdict(s), "worker_fds_total")["allowed"], 50)

    def test_the_fraction_wins_over_the_floor_for_big_figures(self):
        self.assertEqual(series.allowed(100 * MIB, "rss"), 125 * MIB)
        self.assertEqual(series.allowed(1000, "fds"), 1100)

    def test_a_fall_is_flat(self):
        s = steady(6) + [sample(30 + i, worker_rss=(3 * MIB, 4 * MIB)) for i in range(3)]
        self.assertTrue(series.verdict(s)["flat"])

    def test_too_few_samples_is_no_verdict(self):
        v = series.verdict(steady(2))
        self.assertIsNone(v["flat"])
        self.assertIn("not enough samples", series.verdict_text(v)[0])

    def test_a_figure_never_read_fails(self):
        s = [sample(5.0 * i, master_rss=None) for i in range(6)]
        v = series.verdict(s)
        self.assertFalse(v["flat"])
        self.assertEqual(check(v, "master_rss")["why"], "no readings")

    def test_workers_gone_at_a_sample_are_skipped(self):
        s = steady(6) + [sample(30, worker_rss=(), worker_fds=())] + steady(3)
        self.assertTrue(series.verdict(s)["flat"])

    def test_descriptors_must_come_back_after_the_hostile_phase(self):
        before = steady(3, phase="alone", worker_fds=(10, 10))
        back = steady(3, phase="after", worker_fds=(10, 11), worker_rss=(20 * MIB, 30 * MIB))
        v = series.verdict(steady(), before, back)
        self.assertTrue(v["flat"])  # memory need not come back
        self.assertEqual(len(v["checks"]), len(series.WATCHED) + 2)
        kept = steady(3, phase="after", worker_fds=(10, 40))
        v = series.verdict(steady(), before, kept)
        self.assertFalse(v["flat"])
        bad = [c for c in v["checks"] if not c["ok"]]
        self.assertEqual([(c["figure"], c.get("back")) for c in bad],
                         [("worker_fds_total", True)])
        self.assertIn("load alone before max 20", "".join(series.verdict_text(v)[1]))

    def test_the_text_says_which_figure_grew(self):
        s = steady(6) + [sample(30 + i, master_fds=40) for i in range(3)]
        head, lines = series.verdict_text(series.verdict(s))
        self.assertIn("NOT flat", head)
        self.assertTrue(any("master descriptors" in x and "GREW" in x for x in lines), lines)


class Rows(unittest.TestCase):
    def test_one_row_per_bucket_with_spans_closes_and_kills(self):
        s = [sample(0, phase="start", closes={"idle_timeout": 0}),
             sample(10, phase="alone", worker_rss=(3 * MIB, 4 * MIB), closes={"idle_timeout": 0}),
             sample(31, worker_fds=(30, 30), closes={"idle_timeout": 5, "limit_exceeded": 7}),
             sample(59, master_fds=15, closes={"idle_timeout": 9, "limit_exceeded": 20})]
        r = series.rows(s, 30, kills=[12.5, 40.0, 45.0])
        self.assertEqual(len(r), 2)
        self.assertEqual((r[0]["from_s"], r[0]["phase"]), (0, "start+alone"))
        self.assertEqual((r[0]["worker_rss_min"], r[0]["worker_rss_max"]), (3 * MIB, 9 * MIB))
        self.assertEqual(r[0]["kills"], 1)
        self.assertEqual((r[1]["worker_fds_min"], r[1]["worker_fds_max"]), (42, 60))
        self.assertEqual(r[1]["master_fds_max"], 15)
        # closes in the second row: from the first row's last sample to its own last one
        self.assertEqual(r[1]["closes"]["idle_timeout"], 9)
        self.assertEqual(r[1]["closes"]["limit_exceeded"], 20)
        self.assertEqual(r[1]["kills"], 2)

    def test_a_counter_that_steps_back_counts_zero(self):
        self.assertEqual(series.closes_delta({"read_timeout": 5}, {"read_timeout": 3})
                         ["read_timeout"], 0)

    def test_the_table_has_a_line_per_row(self):
        text = series.table(series.rows(steady(12), 30))
        lines = text.splitlines()
        self.assertEqual(len(lines), 2 + 2)  # header, rule, 0-30 s, 30-60 s
        self.assertIn("| 30 | hostile | 8.0–9.0 | 11.0 | 42–42 | 13 |", lines[3])


class Readings(unittest.TestCase):
    def test_rss_from_proc_status(self):
        self.assertEqual(series.parse_rss("Name:\tx\nVmRSS:\t    2048 kB\nThreads: 1\n"),
                         2048 * 1024)
        self.assertIsNone(series.parse_rss("Name:\tzombie\nState:\tZ (zombie)\n"))

    def test_our_own_process_reads(self):
        got = series.process_figures(os.getpid())
        self.assertGreater(got["rss"], 0)
        self.assertGreater(got["fds"], 2)

    def test_prefork_bench_json(self):
        r = series.client_phase({
            "requests": 9990, "errors": {"total": 10, "reset": 4, "closed_early": 6,
                                         "timeout": 0},
            "unfinished": {"in_flight_at_end": 1, "behind_schedule": 3,
                           "starved_connections": 0},
            "throughput_rps": 2000.0, "latency_us": {"p50": 250.0, "p99": 1500.0,
                                                     "max": 9000.0}})
        self.assertEqual(r["success_rate"], 0.999)
        self.assertEqual(r["error_kinds"], {"reset": 4, "closed_early": 6})
        self.assertEqual((r["p50_ms"], r["p99_ms"], r["max_ms"]), (0.25, 1.5, 9.0))
        self.assertEqual(r["behind_schedule"], 3)
        self.assertIsNone(series.client_phase(None))


def bench_slice(p50, p99, requests=1000, errors=0, kinds=None, top=None):
    return {"requests": requests, "errors": errors, "error_kinds": kinds or {},
            "success_rate": None, "behind_schedule": 1, "starved": 0, "throughput": None,
            "p50_ms": p50, "p99_ms": p99, "max_ms": top or 2 * p99}


class Phases(unittest.TestCase):
    def test_counts_add_up_and_percentiles_are_medians_with_a_range(self):
        r = series.phase_summary("hostile", [
            bench_slice(0.1, 5.0, errors=2, kinds={"reset": 2}),
            bench_slice(0.3, 1.0, errors=1, kinds={"reset": 1}),
            bench_slice(0.2, 2.0, top=40.0), None])
        self.assertEqual((r["slices"], r["slices_without_result"]), (4, 1))
        self.assertEqual((r["requests"], r["errors"], r["behind_schedule"]), (3000, 3, 3))
        self.assertEqual(r["error_kinds"], {"reset": 3})
        self.assertAlmostEqual(r["success_rate"], 3000 / 3003)
        self.assertEqual((r["p50_ms"], r["p99_ms"]), (0.2, 2.0))
        self.assertEqual((r["p99_min_ms"], r["p99_max_ms"], r["max_ms"]), (1.0, 5.0, 40.0))

    def test_an_even_number_of_slices_averages_the_middle_two(self):
        r = series.phase_summary("alone", [bench_slice(0.1, 1.0), bench_slice(0.1, 3.0)])
        self.assertEqual(r["p99_ms"], 2.0)

    def test_no_result_at_all(self):
        r = series.phase_summary("alone", [None])
        self.assertIsNone(r["p99_ms"])
        self.assertIsNone(r["success_rate"])
        self.assertIn("no latency comparison", series.latency_comparison([r]).lower())

    def test_the_hostile_p99_against_the_calm_slices_range(self):
        alone = series.phase_summary("alone", [bench_slice(0.1, 1.0), bench_slice(0.1, 4.0)])
        after = series.phase_summary("after", [bench_slice(0.1, 2.0)])
        within = series.phase_summary("hostile", [bench_slice(0.1, 3.0)])
        above = series.phase_summary("hostile", [bench_slice(0.1, 9.0)])
        text = series.latency_comparison([alone, within, after])
        self.assertIn("within the range of the slices without them, 1.000–4.000 ms", text)
        self.assertIn("1.20 against alone, 1.50 against after", text)
        self.assertIn("above the range", series.latency_comparison([alone, above, after]))


if __name__ == "__main__":
    unittest.main()
