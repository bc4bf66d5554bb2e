# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""benchmarks/harness.py: seed loop, spread per figure (against statistics.stdev), paired differences, outputs."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "harness.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("benchmark_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_summarize_matches_statistics(harness):
    values = [0.81, 0.79, 0.9, float("nan")]
    s = harness.summarize(values)
    finite = values[:3]
    assert s["n"] == 3 and s["n_nan"] == 1
    assert s["mean"] == pytest.approx(statistics.mean(finite))
    assert s["std"] == pytest.approx(statistics.stdev(finite))
    assert (s["min"], s["max"]) == (0.79, 0.9)
    one = harness.summarize([2.0])
    assert one["mean"] == 2.0 and math.isnan(one["std"])


def test_parser_one_flag_style(harness):
    args = harness.benchmark_parser("x").parse_args(["--seeds", "3", "4", "--out", "d", "--quick"])
    assert (args.seeds, args.out, args.quick, args.threads) == ([3, 4], "d", True, None)
    assert harness.benchmark_parser("x").parse_args([]).seeds == [0, 1, 2]


def test_flatten_names_bad_figure(harness):
    assert harness.flatten_figures({"erm": {"acc": 1}, "t": 2.5}) == {"erm/acc": 1.0, "t": 2.5}
    with pytest.raises(TypeError, match="'erm/acc'|'acc'"):
        harness.flatten_figures({"erm": {"acc": "high"}})


def test_run_benchmark_seeds_pairs_and_outputs(harness, tmp_path, capsys):
    def run_seed(seed, args):
        draw = float(np.random.rand())  # seeded by the harness before each call
        return {"erm": {"acc": 0.5 + seed / 10, "u": draw}, "fair": {"acc": 0.55 + seed / 5}, "gap": math.nan}

    args = harness.benchmark_parser().parse_args(["--seeds", "0", "1", "2", "--out", str(tmp_path)])
    result = harness.run_benchmark("toy", run_seed, args, pairs=[("fair", "erm")])
    draws = [p["figures"]["erm/u"] for p in result["per_seed"]]
    for seed, draw in zip([0, 1, 2], draws):
        np.random.seed(seed)
        assert draw == np.random.rand()
    diffs = [0.55 + s / 5 - (0.5 + s / 10) for s in (0, 1, 2)]
    paired = result["paired"]["fair-erm/acc"]
    assert paired["mean"] == pytest.approx(statistics.mean(diffs))
    assert paired["std"] == pytest.approx(statistics.stdev(diffs))
    assert result["summary"]["erm/acc"]["std"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))
    assert result["summary"]["gap"]["n"] == 0
    assert "wall_s" in result["summary"]
    saved = json.loads((tmp_path / "toy.json").read_text())  # strict JSON: NaN became null
    assert saved["summary"]["gap"]["mean"] is None and saved["seeds"] == [0, 1, 2]
    md = (tmp_path / "toy.md").read_text()
    assert "| fair-erm/acc | 0.1500 ± 0.1000 | 0.0500 | 0.2500 | 3 |" in md
    assert "| gap | n/a ± n/a | n/a | n/a | 0 |" in md and "Command: `" in md
    with pytest.raises(KeyError, match="share no figure"):
        harness.paired_differences([{"a/x": 1.0}], [("a", "b")])


def test_stopwatch_and_interleaved_ratios(harness, monkeypatch):
    clock = itertools.count(0.0, 1.0)  # each perf_counter() call advances 1 s
    monkeypatch.setattr(harness.time, "perf_counter", lambda: next(clock))
    sw = harness.Stopwatch()
    with sw("ref"):
        pass
    with sw("method"):
        next(clock)  # one extra "second" inside
    with sw("method"):
        pass
    assert sw.seconds == {"ref": 1.0, "method": 3.0}
    assert sw.ratio("method", "ref") == 3.0
    with pytest.raises(KeyError, match="'other' was not timed"):
        sw.ratio("other", "ref")

    timings = harness.interleaved_timing({"ref": lambda: None, "slow": lambda: next(clock)}, "ref", repeats=4)
    assert timings["slow"]["median_ratio"] == 2.0 and timings["slow"]["ratio_std"] == 0.0
    assert timings["ref"]["median_s"] == 1.0 and timings["ref"]["ratio_n"] == 4
    with pytest.raises(KeyError, match="reference 'x'"):
        harness.interleaved_timing({"a": lambda: None}, "x")
