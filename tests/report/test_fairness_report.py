# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from monai_fair.metrics import detectable_gaps, disparity_verdict
from monai_fair.report import (
    ClassificationInputs,
    ReportOptions,
    SegmentationInputs,
    format_report_markdown,
    format_report_summary,
    write_fairness_report,
)
from monai_fair.report.glossary import describe, readable_name
from monai_fair.report.plots import roc_curve_points


def _cls(n=240, seed=1, p=(0.55, 0.42, 0.03)):
    rng = np.random.default_rng(seed)
    g = rng.choice(len(p), n, p=list(p))
    y = rng.integers(0, 2, n)
    s = np.clip(rng.random(n) * 0.6 + 0.35 * y - 0.1 * (g == 1), 0, 1)
    return y, g, s


def _all_text(folder):
    return "\n".join(f.read_bytes().decode("latin-1") for f in sorted(folder.iterdir()) if f.is_file())


def test_secondary_suppression_one_group_left(tmp_path):
    """Two large groups and one small: the small one is hidden, the smaller large one too (secondary), so that
    overall minus the reported group pools two groups; with one group left no group-level figure is given."""
    y, g, s = _cls()
    n_small = int((g == 2).sum())
    assert 0 < n_small < 10
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rep = write_fairness_report(
            tmp_path,
            ClassificationInputs(y=y, group=g, group_names=["F", "M", "Zebra"], y_score=s),
            ReportOptions(n_bootstrap=50, attribute="sex"),
        )
    assert not any("Zebra" in str(x.message) for x in w)
    js = json.loads((tmp_path / "report.json").read_text())
    assert set(js["groups"]) == {"F"}  # M (the smaller reported group) is hidden by the secondary rule
    assert js["suppressed_groups"] == 2 and js["fairness"]["suppressed_groups"] == 2
    assert js["overall"]["n"] - js["groups"]["F"]["n"] == int((g != 0).sum())  # residual pools M and Zebra
    for k in ("auc_gap", "worst_group_auc", "es_auc", "eodds", "demographic_parity"):
        assert js["fairness"][k] is None and js["figures"][k]["value"] is None
    assert any("only one group is left" in n for n in js["notes"])
    assert "only one group is left" in format_report_summary(rep)
    text = _all_text(tmp_path)
    assert "Zebra" not in text and '"M"' not in text
    assert js["groups"]["F"]["auc"] == pytest.approx(roc_auc_score(y[g == 0], s[g == 0]))


def test_report_gaps_verdicts_and_files(tmp_path):
    rng = np.random.default_rng(4)
    g = rng.permutation(np.repeat([0, 1, 2, 3], [250, 200, 120, 6]))  # 3 small; 2 hidden by the secondary rule
    n = g.size
    y = rng.integers(0, 2, n)
    s = np.clip(rng.random(n) * 0.5 + 0.4 * y - 0.15 * (g == 1), 0, 1)
    rep = write_fairness_report(
        tmp_path,
        ClassificationInputs(y=y, group=g, group_names=["A", "B", "C", "Tiny"], y_score=s),
        ReportOptions(n_bootstrap=200, tolerance=0.02, split="test", attribute="site"),
    )
    assert set(rep["groups"]) == {"A", "B"} and rep["suppressed_groups"] == 2
    auc = {k: roc_auc_score(y[g == i], s[g == i]) for i, k in enumerate("AB")}
    assert rep["fairness"]["auc_gap"] == pytest.approx(abs(auc["A"] - auc["B"]))
    assert rep["fairness"]["worst_group_auc"] == pytest.approx(min(auc.values()))
    mdg = detectable_gaps(g, y=y, y_score=s, min_group_size=10)["figures"]
    checked = 0
    for k, e in rep["figures"].items():
        if k.endswith("_gap") and e["value"] is not None:
            assert e["ci_method"] and e["verdict"] in ("disparity", "no disparity shown", "insufficient evidence")
            p = float("nan") if e["p_value"] is None else e["p_value"]
            assert e["verdict"] == disparity_verdict(
                e["value"], e["ci"], 0.02, p, detectable_gap=e["min_detectable_gap"]
            )
            assert e["p_value"] is None or (e["test"] and 0 <= e["p_value"] <= 1)
            base = k[: -len("_gap")]
            if base in mdg and mdg[base]["detectable_gap"] > 0:
                assert e["min_detectable_gap"] == pytest.approx(mdg[base]["detectable_gap"])
                checked += 1
            elif base in mdg:  # a degenerate variance (FPR 0 in both groups) is no detectable gap
                assert e["min_detectable_gap"] is None
    assert checked >= 2  # accuracy, AUC, TPR, FPR gaps
    assert rep["figures"]["auc_gap"]["ci_method"].startswith("percentile of B=200 parametric draws")
    assert rep["groups"]["A"]["ci"]["auc"] and rep["ci_methods"]["auc"] == "DeLong"
    # calibration merged: ECE per group (sklearn-style equal-width bins) and the gap
    assert rep["groups"]["A"]["ece"] is not None and rep["figures"]["ece_gap"]["verdict"] is not None
    assert set(rep["reliability"]["groups"]) == {"A", "B"}
    assert rep["threshold"] == {"value": 0.5, "source": "default 0.5"}
    for f in ("report.json", "report.md", "group_metrics.png", "gaps_forest.png", "roc_curves.png", "reliability.png"):
        assert (tmp_path / f).stat().st_size > 0
    md = (tmp_path / "report.md").read_text()
    assert md == format_report_markdown(json.loads((tmp_path / "report.json").read_text()))
    assert "## Glossary" in md and "Decision threshold: 0.500 (source: default 0.5)" in md
    for k, e in rep["figures"].items():  # every figure in the table is defined in the glossary
        if e["value"] is not None:
            assert f"(`{k}`): " in md.split("## Glossary")[1]
    assert "Tiny" not in _all_text(tmp_path) and '"C"' not in _all_text(tmp_path)


def test_selection_rate_flag_and_threshold_source(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    g = np.repeat([0, 1], n // 2)
    y = rng.integers(0, 2, n)
    s = np.where(g == 1, 0.9, rng.random(n))  # group 1: every case predicted positive
    rep = write_fairness_report(
        tmp_path,
        ClassificationInputs(
            y=y, group=g, group_names=["a", "b"], y_score=s, threshold=0.3, threshold_source="fitted on validation"
        ),
        ReportOptions(n_bootstrap=0),
        plots=False,
    )
    assert len(rep["flags"]) == 1 and "'b'" in rep["flags"][0] and "selection rate 1" in rep["flags"][0]
    assert rep["threshold"] == {"value": 0.3, "source": "fitted on validation"}
    assert "flag:" in format_report_summary(rep)
    assert rep["figures"]["eodds"]["caveat"] and "caveat" not in rep["figures"]["auc_gap"]
    assert rep["ci_method"] is None and rep["figures"]["auc_gap"]["verdict"] is None
    assert rep["figures"]["auc_gap"]["min_detectable_gap"] is not None  # needs group sizes, not intervals


def test_every_group_suppressed_panel(tmp_path):
    y, g, s = _cls(n=30, p=(0.5, 0.5))
    rep = write_fairness_report(
        tmp_path,
        ClassificationInputs(y=y, group=g, group_names=["P", "Q"], y_score=s),
        ReportOptions(n_bootstrap=20, min_group_size=20),
    )
    assert rep["groups"] == {} and rep["suppressed_groups"] == 2
    assert any("no group can be shown" in x for x in rep["notes"])
    for f in ("group_metrics.png", "gaps_forest.png", "reliability.png", "roc_curves.png"):
        assert (tmp_path / f).stat().st_size > 0


def test_segmentation_report(tmp_path):
    rng = np.random.default_rng(1)
    g = np.repeat([0, 1], 12)
    dice = np.clip(rng.normal(0.8 - 0.2 * g, 0.05), 0, 1)
    rep = write_fairness_report(
        tmp_path, SegmentationInputs(dice=dice, iou=dice / (2 - dice), group=g, group_names=["a", "b"])
    )
    assert rep["fairness"]["dice_gap"] == pytest.approx(abs(dice[g == 0].mean() - dice[g == 1].mean()))
    assert rep["figures"]["dice_gap"]["verdict"] == "disparity"
    assert {"es_dice", "ser", "dice_gap"} <= set(rep["fairness"])
    assert rep["threshold"] is None
    assert (tmp_path / "group_metrics.png").exists() and not (tmp_path / "roc_curves.png").exists()


def test_roc_curve_points_match_sklearn():
    import torch
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(2)
    s = np.round(rng.random(50), 1)
    y = rng.integers(0, 2, 50)
    fpr, tpr = roc_curve_points(torch.as_tensor(s), torch.as_tensor(y == 1))
    f2, t2, _ = roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(fpr, f2) and np.allclose(tpr, t2)


def test_glossary_names():
    assert readable_name("tpr") == "TPR" and readable_name("selection_rate") == "selection rate"
    assert readable_name("auc_gap") == "AUC gap" and readable_name("worst_group_dice") == "worst-group Dice"
    assert readable_name("es_dice_fairmedfm") == "ES-Dice (FairMedFM form)"
    name, definition = describe("eodds")
    assert "max(TPR gap, FPR gap)" in definition


def test_multiclass_report(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    g = rng.integers(0, 2, n)
    y = rng.integers(0, 3, n)
    p = rng.dirichlet([1, 1, 1], n)
    p[np.arange(n), y] += 0.5
    p /= p.sum(1, keepdims=True)
    rep = write_fairness_report(
        tmp_path, ClassificationInputs(y=y, group=g, group_names=["A", "B"], y_score=p), ReportOptions(n_bootstrap=30)
    )
    m = g == 1
    assert rep["groups"]["B"]["auc"] == pytest.approx(roc_auc_score(y[m], p[m], multi_class="ovr"))
    assert "selection_rate" not in rep["overall"] and rep["figures"]["auc_gap"]["min_detectable_gap"] is None
    assert rep["reliability"] is not None and not (tmp_path / "roc_curves.png").exists()
