# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Suppression grep, report and compare CLIs: no output (files, stdout, stderr, warnings) names the suppressed
group or lets it be derived from overall minus the reported groups."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np

from monai_fair.__main__ import main
from tests.privacy.leaks import LARGE, SMALL, find_leaks, output_files


def _predictions(path, n_large=40, n_small=6, seed=0, third=None):
    rng = np.random.default_rng(seed)
    groups = [LARGE] * n_large + [SMALL] * n_small + ([third] * 30 if third else [])
    rng.shuffle(groups)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "image", "prob_0", "prob_1", "pred", "label", "group", "patient_id"])
        for k, grp in enumerate(groups):
            y = int(rng.integers(0, 2))
            s = float(np.clip(rng.random() * 0.7 + 0.3 * y, 0, 1))
            w.writerow([f"c{k}", f"i{k}.png", f"{1 - s:.4f}", f"{s:.4f}", int(s >= 0.5), y, grp, f"p{k}"])
    return path


def test_report_cli_two_groups_one_small(tmp_path, capsys):
    pred = _predictions(tmp_path / "predictions.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main(["report", str(pred), "--out", str(tmp_path / "out"), "--n-bootstrap", "50"])
    assert rc == 0
    out = capsys.readouterr()
    texts = [out.out, out.err, *(str(w.message) for w in caught)]
    leaks = find_leaks(output_files(tmp_path / "out"), [6], texts)
    assert not leaks, "\n".join(leaks)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["groups"] == {} and rep["suppressed_groups"] == 2 and rep["overall"]["n"] == 46


def test_report_and_compare_cli_three_groups_not_derivable(tmp_path, capsys):
    """Three groups, one small: the smallest other group is hidden too, so overall minus the reported group pools
    two groups; neither the small group's n nor its accuracy can be recovered."""
    a = _predictions(tmp_path / "a.csv", third="Other", seed=1)
    b = _predictions(tmp_path / "b.csv", third="Other", seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", str(a), "--out", str(tmp_path / "rep"), "--n-bootstrap", "30"]) == 0
        assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp"), "--n-bootstrap", "30"]) == 0
    out = capsys.readouterr()
    texts = [out.out, out.err, *(str(w.message) for w in caught)]
    for folder in ("rep", "cmp"):
        for f in output_files(tmp_path / folder):
            assert SMALL.lower() not in f.read_bytes().decode("latin-1").lower(), f
    assert not any(SMALL.lower() in t.lower() for t in texts)
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    shown = sum(e["n"] for e in rep["groups"].values())
    residual = rep["overall"]["n"] - shown
    assert set(rep["groups"]) == {LARGE} and residual == 36  # "Other" (30) and the small group (6) pooled
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert {f["group_name"] for c in cmp["comparisons"] for f in c["figures"] if f["scope"] == "group"} == {LARGE}
