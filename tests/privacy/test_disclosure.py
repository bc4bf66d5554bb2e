# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Differencing across reports (issue 18 item 11): the disclosure record beside the outputs, and the refusal of a
report whose grouping would make a hidden group of an earlier report derivable by subtraction (report 1 by sex,
report 2 by sex x age on the same cases: hidden cell = parent total - visible siblings)."""

from __future__ import annotations

import csv
import json

import numpy as np

from monai_fair.__main__ import main
from monai_fair.report.disclosure import Release, find_conflicts


def _table(tmp_path, n_old_f=8, n=200, seed=0, name="preds.csv", ids=None):
    """Sex F/M and age bands; ``n_old_f`` women aged >= 60 (a hidden cell when below min_group_size)."""
    rng = np.random.default_rng(seed)
    sex = np.array(["F"] * 60 + ["M"] * (n - 60))
    age = np.array(["<60"] * n, dtype=object)
    age[60 - n_old_f : 60] = ">=60"
    age[60 : 60 + 30] = ">=60"
    y = rng.integers(0, 2, n)
    s = np.clip(0.5 * y + rng.random(n) * 0.5, 0, 1)
    ids = ids if ids is not None else [f"c{i}" for i in range(n)]
    path = tmp_path / name
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "prob_0", "prob_1", "label", "sex", "sex_age"])
        for i in range(n):
            w.writerow([ids[i], f"{1 - s[i]:.4f}", f"{s[i]:.4f}", y[i], sex[i], f"{sex[i]} {age[i]}"])
    return path


def _report(tmp_path, capsys, path, col, out, *extra):
    args = ["report", str(path), "--out", str(tmp_path / out), "--group-col", col, "--n-bootstrap", "20"]
    rc = main([*args, "--no-plots", *extra])
    return rc, capsys.readouterr()


def test_two_report_subtraction_is_refused(tmp_path, capsys):
    path = _table(tmp_path)
    rc, out = _report(tmp_path, capsys, path, "sex", "by_sex")
    assert rc == 0, out.err
    js = json.loads((tmp_path / "by_sex" / "report.json").read_text())
    assert js["groups"]["F"]["n"] == 60  # F is shown: 60 women, 8 of them aged >= 60
    record = json.loads((tmp_path / "disclosure_record.json").read_text())
    assert [r["report"] for r in record["releases"]] == ["by_sex"]
    assert '"c0"' not in json.dumps(record) and '"c17"' not in json.dumps(record)  # salted hashes
    # report 2: sex x age hides "F >=60" (n = 8); F (report 1) - "F <60" (report 2) would give it exactly
    rc, out = _report(tmp_path, capsys, path, "sex_age", "by_sex_age")
    assert rc == 2
    assert "refused" in out.err and "hidden group of this report" in out.err
    assert "by_sex:F" in out.err and "by_sex_age:F <60" in out.err and "disclosure_record.json" in out.err
    assert not (tmp_path / "by_sex_age" / "report.json").exists()
    record = json.loads((tmp_path / "disclosure_record.json").read_text())
    assert [r["report"] for r in record["releases"]] == ["by_sex"]  # the refused report is not recorded


def test_without_hidden_cell_second_grouping_is_allowed_and_recorded(tmp_path, capsys):
    path = _table(tmp_path, n_old_f=20)  # every sex x age cell has >= 10 cases: nothing hidden
    assert _report(tmp_path, capsys, path, "sex", "by_sex")[0] == 0
    rc, out = _report(tmp_path, capsys, path, "sex_age", "by_sex_age")
    assert rc == 0, out.err
    record = json.loads((tmp_path / "disclosure_record.json").read_text())
    assert [r["report"] for r in record["releases"]] == ["by_sex", "by_sex_age"]


def test_rerun_same_report_and_other_cases_are_not_conflicts(tmp_path, capsys):
    path = _table(tmp_path)
    assert _report(tmp_path, capsys, path, "sex_age", "by_sex_age")[0] == 0  # the fine grouping first
    assert _report(tmp_path, capsys, path, "sex_age", "by_sex_age")[0] == 0  # rerun: replaces its entry
    # a stricter rerun hides more, which was already shown: no new disclosure
    assert _report(tmp_path, capsys, path, "sex_age", "strict", "--min-group-size", "40")[0] == 0
    # the same grouping on other cases (other ids): no overlap, nothing derivable
    other = _table(tmp_path, seed=1, name="other.csv", ids=[f"x{i}" for i in range(200)])
    assert _report(tmp_path, capsys, other, "sex", "other_by_sex")[0] == 0
    record = json.loads((tmp_path / "disclosure_record.json").read_text())
    assert sorted(r["report"] for r in record["releases"]) == ["by_sex_age", "other_by_sex", "strict"]


def test_coarse_after_fine_is_refused_too(tmp_path, capsys):
    # report 1 by sex x age hides "F >=60" and, by secondary suppression, one more cell; report 2 by sex shows F
    path = _table(tmp_path)
    rc, out = _report(tmp_path, capsys, path, "sex_age", "by_sex_age")
    assert rc == 0, out.err
    rc, out = _report(tmp_path, capsys, path, "sex", "by_sex")
    assert rc == 2 and "the earlier report 'by_sex_age'" in out.err


def test_find_conflicts_parent_minus_siblings():
    parent = Release("r1", "sex", "a.csv", 10, {"F": ["a", "b", "c"], "M": ["d", "e"]}, {"F": True, "M": True}, True)
    child = Release(
        "r2",
        "sex x age",
        "a.csv",
        10,
        {"F young": ["a", "b"], "F old": ["c"], "M young": ["d", "e"]},
        {"F young": True, "F old": False, "M young": False},  # secondary suppression hides "M young" too
        True,
    )
    msgs = find_conflicts([parent], child)
    # "F old" = r1:F - r2:F young ("M young" = r1:M was shown by r1 already: no new disclosure)
    assert msgs == ["a hidden group of this report (attribute 'sex x age') would be derivable as r1:F - r2:F young"]
    assert find_conflicts([], child) == []  # alone: overall - "F young" mixes two hidden groups
