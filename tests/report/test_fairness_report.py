# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from monai_fair.__main__ import main
from monai_fair.report import format_report_markdown, format_report_summary, write_fairness_report
from monai_fair.report.plots import roc_curve_points


def _cls(n=240, seed=1):
    rng = np.random.default_rng(seed)
    g = rng.choice(3, n, p=[0.55, 0.42, 0.03])
    y = rng.integers(0, 2, n)
    s = np.clip(rng.random(n) * 0.6 + 0.35 * y - 0.1 * (g == 1), 0, 1)
    return y, g, s


def test_classification_report_files_and_suppression(tmp_path):
    y, g, s = _cls()
    n_small = int((g == 2).sum())
    assert 0 < n_small < 10
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rep = write_fairness_report(tmp_path, "classification", y, g, ["F", "M", "rare"], y_score=s, n_bootstrap=50)
    assert not any("rare" in str(x.message) for x in w)
    for f in ("report.json", "report.md", "group_metrics.png", "roc_curves.png"):
        assert (tmp_path / f).stat().st_size > 0
    js = json.loads((tmp_path / "report.json").read_text())
    assert set(js["groups"]) == {"F", "M"}
    assert js["suppressed_groups"] == 1 and js["fairness"]["suppressed_groups"] == 1
    md = (tmp_path / "report.md").read_text()
    assert "rare" not in md and "rare" not in format_report_summary(rep)
    m = g == 1
    assert js["groups"]["M"]["auc"] == pytest.approx(roc_auc_score(y[m], s[m]))
    assert js["groups"]["M"]["n"] == int(m.sum())
    # gaps use only the reported groups
    assert js["fairness"]["auc_gap"] == pytest.approx(abs(js["groups"]["F"]["auc"] - js["groups"]["M"]["auc"]))
    assert js["overall"]["n"] == len(y)  # the small group's samples still count overall
    lo, hi = js["groups"]["F"]["ci"]["auc"]
    assert lo <= js["groups"]["F"]["auc"] <= hi
    for k in ("accuracy_gap", "auc_gap", "es_auc", "es_accuracy", "eodds", "eopp0", "eopp1", "demographic_parity"):
        assert k in js["fairness"]
    assert md == format_report_markdown(js)


def test_segmentation_report(tmp_path):
    rng = np.random.default_rng(1)
    g = np.repeat([0, 1], 12)
    dice = np.clip(rng.normal(0.8 - 0.2 * g, 0.05), 0, 1)
    rep = write_fairness_report(tmp_path, "segmentation", None, g, ["a", "b"], dice=dice, iou=dice / (2 - dice))
    assert rep["fairness"]["dice_gap"] == pytest.approx(abs(dice[g == 0].mean() - dice[g == 1].mean()))
    assert {"es_dice", "ser", "dice_gap"} <= set(rep["fairness"])
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


def _run_cli(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "monai_fair", "report", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_cli_classification(tmp_path):
    y, g, s = _cls(n=120, seed=3)
    names = np.array(["female", "male", "other"])
    with (tmp_path / "preds.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "pred", "score", "sex"])
        for k in range(len(y)):
            w.writerow([k, y[k], int(s[k] >= 0.5), f"{s[k]:.6f}", names[g[k]]])
    r = _run_cli(
        [
            "preds.csv",
            "--label-col",
            "label",
            "--pred-col",
            "pred",
            "--score-col",
            "score",
            "--group-col",
            "sex",
            "--out",
            "out",
            "--n-bootstrap",
            "20",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    js = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(js["groups"]) <= {"female", "male"} and js["suppressed_groups"] >= 1
    m = g == 0
    s6 = np.round(s, 6)
    assert js["groups"]["female"]["auc"] == pytest.approx(roc_auc_score(y[m], s6[m]))
    assert "fairness report" in r.stdout
    with pytest.raises(ValueError, match="race"):
        main(["report", str(tmp_path / "preds.csv"), "--group-col", "race", "--out", str(tmp_path / "o2")])
    # stratified bootstrap: flagged in the report, point estimates unchanged
    rc = main(
        [
            "report",
            str(tmp_path / "preds.csv"),
            "--label-col",
            "label",
            "--pred-col",
            "pred",
            "--score-col",
            "score",
            "--group-col",
            "sex",
            "--out",
            str(tmp_path / "o3"),
            "--n-bootstrap",
            "20",
            "--stratified-bootstrap",
            "--no-plots",
        ]
    )
    assert rc == 0
    js3 = json.loads((tmp_path / "o3" / "report.json").read_text())
    assert js3["stratified_bootstrap"] is True and js["stratified_bootstrap"] is False
    assert js3["groups"]["female"]["auc"] == js["groups"]["female"]["auc"]
    assert "stratified by group" in (tmp_path / "o3" / "report.md").read_text()


def test_cli_segmentation_nifti(tmp_path):
    rows = []
    for k in range(6):
        lab = np.zeros((8, 8, 4), np.uint8)
        lab[2:6, 2:6] = 1
        pred = lab.copy()
        if k % 2:  # group 1 under-segments: 32 of 64 voxels, Dice 2*32/(64+32), IoU 1/2
            pred[2:4, 2:6] = 0
        for name, arr in (("lab", lab), ("pred", pred)):
            nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / f"{name}{k}.nii.gz")
        rows.append([f"pred{k}.nii.gz", f"lab{k}.nii.gz", k % 2])
    with (tmp_path / "seg.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pred", "label", "group"])
        w.writerows(rows)
    rc = main(
        [
            "report",
            str(tmp_path / "seg.csv"),
            "--task",
            "segmentation",
            "--group-col",
            "group",
            "--group-names",
            "A,B",
            "--out",
            str(tmp_path / "out"),
            "--min-group-size",
            "3",
            "--n-bootstrap",
            "0",
        ]
    )
    assert rc == 0
    js = json.loads((tmp_path / "out" / "report.json").read_text())
    assert js["groups"]["A"]["dice"] == pytest.approx(1.0)
    assert js["groups"]["B"]["dice"] == pytest.approx(2 * 32 / (64 + 32))
    assert js["groups"]["B"]["iou"] == pytest.approx(0.5)
    assert js["fairness"]["dice_gap"] == pytest.approx(1 - 2 / 3)
    assert js["fairness"]["ser"] is None  # best group perfect: undefined
