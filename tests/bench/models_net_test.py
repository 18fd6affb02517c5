#!/usr/bin/env python3
"""Unit test of bench/models' net CPU figures: the server's CPU minus the CPU of
the same server started and stopped without load. When that idle baseline is as
large as the measurement, or the difference is within the baseline's own noise,
the figure is "below noise" (null in JSON, flagged), never a number, however the
machine behaved. Fed made-up runs: no server runs here.
  usage: models_net_test.py [unittest options]"""

import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import models  # noqa: E402

CONNS = 300


def run(config, rep, cpu_s):
    return {"config": config, "rep": rep, "server_cpu_s": cpu_s, "server_connections": CONNS,
            "requests": CONNS, "slots": [CONNS // 2, CONNS // 2]}


def idle(config, rep, cpu_s):
    return {"config": config, "rep": rep, "server_cpu_s": cpu_s}


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class NetOf(unittest.TestCase):
    def test_baseline_larger_than_the_measurement_is_below_noise(self):
        self.assertIsNone(models.net_of(0.03, [0.05]))
        self.assertIsNone(models.net_of(0.03, [0.04, 0.05, 0.06]))

    def test_equal_to_the_baseline_is_below_noise(self):
        self.assertIsNone(models.net_of(0.05, [0.05]))

    def test_within_the_baselines_spread_is_below_noise(self):
        # median 0.03, spread 0.02: 0.045 is 0.015 above the median, inside the noise
        self.assertIsNone(models.net_of(0.045, [0.02, 0.03, 0.04]))

    def test_above_the_noise_is_the_difference_from_the_median(self):
        self.assertAlmostEqual(models.net_of(1.0, [0.02, 0.03, 0.04]), 0.97)

    def test_no_baseline_is_the_measurement_itself(self):
        self.assertEqual(models.net_of(0.5, []), 0.5)
        self.assertIsNone(models.net_of(0.0, []))


class NetSummary(unittest.TestCase):
    def test_all_below_noise(self):
        s = models.net_summary([], 3)
        self.assertEqual((s["median"], s["min"], s["max"], s["n"]), (None, None, None, 3))
        self.assertTrue(s["below_noise"])
        self.assertEqual(s["runs_below_noise"], 3)

    def test_below_noise_ranks_lowest(self):
        s = models.net_summary([5.0, 7.0], 1)  # ranked: below, 5, 7
        self.assertEqual((s["median"], s["min"], s["max"]), (5.0, None, 7.0))
        self.assertFalse(s["below_noise"])
        s = models.net_summary([5.0], 2)  # ranked: below, below, 5
        self.assertIsNone(s["median"])
        self.assertTrue(s["below_noise"])

    def test_none_below_noise(self):
        s = models.net_summary([3.0, 1.0, 2.0], 0)
        self.assertEqual((s["median"], s["min"], s["max"], s["n"]), (2.0, 1.0, 3.0, 3))
        self.assertFalse(s["below_noise"])

    def test_nothing_measured(self):
        self.assertIsNone(models.net_summary([], 0))


class SummarizeMain(unittest.TestCase):
    """The figures bench/models writes, from runs whose idle twin cost more CPU."""

    def summarize(self):
        runs, idles = [], []
        for rep in (1, 2, 3):
            # iterative: idle 50 ms, loaded 30 ms: a net of -20 ms over 300 connections
            runs.append(run("iterative", rep, 0.030))
            idles.append(idle("iterative", rep, 0.050))
            # prefork:lock: well above its idle baseline
            runs.append(run("prefork:lock", rep, 0.500 + 0.01 * rep))
            idles.append(idle("prefork:lock", rep, 0.040 + 0.001 * rep))
        return models.summarize_main(runs, idles), runs

    def test_net_below_the_baseline_is_never_a_number(self):
        out, runs = self.summarize()
        s = out["iterative"]["cpu_us_per_conn"]
        self.assertIsNone(s["median"])
        self.assertTrue(s["below_noise"])
        self.assertEqual(s["runs_below_noise"], 3)
        for r in runs:
            if r["config"] == "iterative":
                self.assertIsNone(r["cpu_us_per_conn"])
                self.assertTrue(r["cpu_us_per_conn_below_noise"])
                self.assertTrue(is_number(r["cpu_us_per_conn_gross"]))

    def test_net_above_the_baseline_is_a_number(self):
        out, runs = self.summarize()
        s = out["prefork:lock"]["cpu_us_per_conn"]
        self.assertTrue(is_number(s["median"]))
        self.assertFalse(s["below_noise"])

    def test_no_negative_number_in_any_cpu_figure(self):
        out, _ = self.summarize()
        for key, s in out.items():
            for field in ("cpu_us_per_conn", "control_us_per_conn"):
                fig = s[field]
                if fig is None:
                    continue
                for k in ("median", "min", "max"):
                    self.assertTrue(fig[k] is None or fig[k] > 0, f"{key} {field} {k} {fig}")

    def test_process_control_of_a_design_below_noise_is_below_noise(self):
        runs = [run("iterative", 1, 0.300), run("prefork:lock", 1, 0.045)]
        idles = [idle("iterative", 1, 0.050), idle("prefork:lock", 1, 0.050)]
        out = models.summarize_main(runs, idles)
        s = out["prefork:lock"]["control_us_per_conn"]
        self.assertIsNone(s["median"])
        self.assertTrue(s["below_noise"])

    def test_markdown_cells_say_below_noise(self):
        out, _ = self.summarize()
        cell = models.net_range(out["iterative"]["cpu_us_per_conn"])
        self.assertTrue(cell.startswith("below noise"), cell)
        self.assertNotIn("-", cell)
        self.assertRegex(models.net_range(out["prefork:lock"]["cpu_us_per_conn"]), r"^[0-9]")
        self.assertEqual(models.net_range(models.net_summary([4.0, 6.0], 1)),
                         "4.0 (below noise–6.0)")


if __name__ == "__main__":
    unittest.main()
