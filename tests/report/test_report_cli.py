# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair report``: the predictions.csv convention with no flags, NaN policy, group normalisation,
string labels, cluster column, one-line user errors (exit 2), segmentation masks, the fairness card."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from monai_fair.__main__ import main


def _write(path, header, rows):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _convention(tmp_path, n=160, seed=3, nan_row=None, sex_spellings=("F", "M")):
    """A bundle inference predictions.csv: case_id, image, prob_<class>, pred, label, group (+ patient_id)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = rng.integers(0, 2, n)
    s = np.round(np.clip(rng.random(n) * 0.6 + 0.3 * y - 0.1 * g, 0, 1), 4)
    rows = []
    for k in range(n):
        p1 = "" if k == nan_row else f"{s[k]:.4f}"
        p0 = "" if k == nan_row else f"{1 - s[k]:.4f}"
        name = sex_spellings[g[k]] if k % 3 else f" {sex_spellings[g[k]].lower()} "  # messy spellings
        rows.append([f"c{k:03d}", f"img{k}.png", p0, p1, int(s[k] >= 0.5), y[k], name, f"p{g[k]}_{k // 2}"])
    header = ["case_id", "image", "prob_benign", "prob_malignant", "pred", "label", "group", "patient_id"]
    return _write(tmp_path / "predictions.csv", header, rows), y, g, s


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(args, cwd, capsys):
    """``python -m monai_fair report ARGS`` in-process (a subprocess costs seconds of imports per call)."""
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc = main(["report", *args])
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return _Result(rc, out.out, out.err)


def test_cli_convention_no_flags(tmp_path, capsys):
    path, y, g, s = _convention(tmp_path)
    r = _cli([str(path), "--out", "out", "--n-bootstrap", "50", "--min-group-size", "5"], tmp_path, capsys)
    assert r.returncode == 0, r.stderr
    js = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(js["groups"]) == {"F", "M"}  # ' f ' and 'F' are one group, shown with the frequent spelling
    for i, name in enumerate(("F", "M")):
        m = g == i
        assert js["groups"][name]["n"] == int(m.sum())
        assert js["groups"][name]["auc"] == pytest.approx(roc_auc_score(y[m], s[m]))
        assert js["groups"][name]["accuracy"] == pytest.approx(accuracy_score(y[m], s[m] >= 0.5))
    assert js["threshold"] == {"value": 0.5, "source": "default 0.5"}
    assert js["bootstrap"] == "cluster"  # patient_id detected: patients are resampled
    assert js["attribute"] == "group" and js["split"] == "predictions"
    assert "fairness report" in r.stdout and "auc_gap=" in r.stdout
    # stratified (cluster) bootstrap: flagged and named, point estimates unchanged
    args = [str(path), "--out", "o_strat", "--n-bootstrap", "50", "--min-group-size", "5", "--stratified-bootstrap"]
    assert _cli(args, tmp_path, capsys).returncode == 0
    js2 = json.loads((tmp_path / "o_strat" / "report.json").read_text())
    assert js2["stratified_bootstrap"] is True and js["stratified_bootstrap"] is False
    assert js2["groups"]["F"]["auc"] == js["groups"]["F"]["auc"] and "stratified" in js2["ci_method"]
    assert "stratified" in (tmp_path / "o_strat" / "report.md").read_text()
    card = json.loads((tmp_path / "out" / "fairness_card.json").read_text())
    assert card["groups"] == {"F": int((g == 0).sum()), "M": int((g == 1).sum())}
    assert "auc_gap" in card["headline"] and card["headline"]["auc_gap"]["ci_method"]
    assert (tmp_path / "out" / "fairness_card.md").read_text().startswith("# Fairness card")


def test_cli_threshold_pred_col_and_nan_policy(tmp_path, capsys):
    path, y, g, s = _convention(tmp_path, nan_row=7)
    keep = np.arange(len(y)) != 7
    out = tmp_path / "o1"
    assert main(["report", str(path), "--out", str(out), "--n-bootstrap", "0", "--threshold", "0.3"]) == 0
    js = json.loads((out / "report.json").read_text())
    assert js["n_omitted"] == 1 and js["overall"]["n"] == int(keep.sum())
    assert js["overall"]["accuracy"] == pytest.approx(accuracy_score(y[keep], s[keep] >= 0.3))  # not NaN
    assert js["threshold"] == {"value": 0.3, "source": "user (--threshold 0.3)"}
    assert any("1 case(s) with a missing value" in n for n in js["notes"])
    out2 = tmp_path / "o2"
    assert main(["report", str(path), "--out", str(out2), "--n-bootstrap", "0", "--pred-col", "pred"]) == 0
    js2 = json.loads((out2 / "report.json").read_text())
    assert js2["threshold"]["source"].startswith("predicted labels of column 'pred'")
    r = _cli([str(path), "--out", "o3", "--nan-policy", "error"], tmp_path, capsys)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "line 9" in r.stderr and "'c007'" in r.stderr and "prob_benign" in r.stderr


def test_cli_string_labels_aliases_and_columns(tmp_path, capsys):
    rng = np.random.default_rng(5)
    n = 120
    sex = rng.choice(["male", "Male ", "M", "female", "FEMALE", "f"], n)
    y = rng.integers(0, 2, n)
    s = np.round(np.clip(rng.random(n) * 0.7 + 0.3 * y, 0, 1), 4)
    finding = np.where(y == 1, "abnormal", "normal")
    path = _write(
        tmp_path / "t.csv", ["file", "finding", "p_abn", "sex"], [[k, finding[k], s[k], sex[k]] for k in range(n)]
    )
    r = _cli([str(path), "--out", "o", "--n-bootstrap", "0"], tmp_path, capsys)
    assert r.returncode == 2 and "no label column" in r.stderr and "Traceback" not in r.stderr
    r = _cli(
        [str(path), "--out", "o", "--label-col", "finding", "--score-col", "p_abn", "--group-col", "sex"],
        tmp_path,
        capsys,
    )
    assert r.returncode == 2 and "--positive-label" in r.stderr  # string labels: no silent alphabetical order
    args = ["--label-col", "finding", "--positive-label", "abnormal", "--score-col", "p_abn", "--group-col", "sex"]
    args += ["--group-alias", "male=M", "--group-alias", "female=F,f=F", "--min-group-size", "5", "--n-bootstrap", "0"]
    r = _cli([str(path), "--out", "o", *args], tmp_path, capsys)
    assert r.returncode == 0, r.stderr
    js = json.loads((tmp_path / "o" / "report.json").read_text())
    assert set(js["groups"]) == {"F", "M"}
    male = np.isin(np.char.lower(np.char.strip(sex.astype(str))), ["male", "m"])
    assert js["groups"]["M"]["n"] == int(male.sum())
    assert js["groups"]["M"]["auc"] == pytest.approx(roc_auc_score(y[male], s[male]))
    assert js["attribute"] == "sex"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["missing.csv"], "not found"),
        (["{csv}", "--group-col", "race"], "'race'"),
        (["{csv}", "--score-col", "nope"], "'nope'"),
        (["{csv}", "--positive-label", "maybe"], "'maybe'"),
        (["{bad}"], "'prob_malignant' holds 'high'"),
    ],
)
def test_cli_user_errors_one_line(tmp_path, args, expected, capsys):
    path, *_ = _convention(tmp_path, n=20)
    bad = tmp_path / "bad.csv"
    lines = path.read_text().splitlines()
    cells = lines[6].split(",")
    cells[3] = "high"
    lines[6] = ",".join(cells)
    bad.write_text("\n".join(lines) + "\n")
    args = [a.format(csv=path, bad=bad) for a in args]
    r = _cli([*args, "--out", "o", "--n-bootstrap", "0"], tmp_path, capsys)
    assert r.returncode == 2, r.stdout
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and expected in r.stderr, r.stderr


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
    _write(tmp_path / "seg.csv", ["pred", "label", "group"], rows)
    argv = ["report", str(tmp_path / "seg.csv"), "--task", "segmentation", "--group-names", "A,B"]
    rc = main([*argv, "--out", str(tmp_path / "out"), "--min-group-size", "3", "--n-bootstrap", "0"])
    assert rc == 0
    js = json.loads((tmp_path / "out" / "report.json").read_text())
    assert js["groups"]["A"]["dice"] == pytest.approx(1.0)
    assert js["groups"]["B"]["dice"] == pytest.approx(2 * 32 / (64 + 32))
    assert js["groups"]["B"]["iou"] == pytest.approx(0.5)
    assert js["fairness"]["dice_gap"] == pytest.approx(1 - 2 / 3)
    assert js["fairness"]["ser"] is None  # best group perfect: undefined
    assert (tmp_path / "out" / "fairness_card.md").is_file()
    assert main([*argv, "--out", str(tmp_path / "o2"), "--label-col", "lbl"]) == 2


def test_cli_segmentation_dice_columns_autodetected(tmp_path, capsys):
    """The bundles' segmentation predictions.csv (per-image dice/iou columns) needs no flag either."""
    rng = np.random.default_rng(7)
    g = np.repeat([0, 1], 15)
    dice = np.round(np.clip(0.8 - 0.15 * g + rng.normal(0, 0.05, g.size), 0, 1), 5)
    iou = np.round(dice / (2 - dice), 5)
    rows = [[f"k{i}", f"img{i}.nii.gz", dice[i], iou[i], "", f"lab{i}.nii.gz", "AB"[g[i]]] for i in range(g.size)]
    rows[3][2] = ""  # one case without a score: omitted and counted
    path = _write(tmp_path / "predictions.csv", ["case_id", "image", "dice", "iou", "pred", "label", "group"], rows)
    r = _cli([str(path), "--out", "o", "--n-bootstrap", "20"], tmp_path, capsys)
    assert r.returncode == 0, r.stderr
    js = json.loads((tmp_path / "o" / "report.json").read_text())
    keep = np.arange(g.size) != 3
    assert js["task"] == "segmentation" and js["n_omitted"] == 1
    for k, name in enumerate("AB"):
        m = keep & (g == k)
        assert js["groups"][name]["dice"] == pytest.approx(dice[m].mean())
        assert js["groups"][name]["iou"] == pytest.approx(iou[m].mean())


def test_cli_subprocess_user_error_and_help(tmp_path):
    """A real process: a user mistake exits 2 with one line and no traceback; ``--help`` imports no torch/MONAI."""
    r = subprocess.run(
        [sys.executable, "-m", "monai_fair", "report", "nowhere.csv", "--out", "o"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    code = (
        "import sys; from monai_fair.__main__ import main\n"
        "try:\n    main(['report', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'heavy import'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--nan-policy" in r.stdout and "--group-alias" in r.stdout, r.stderr


def test_cli_alpha_changes_verdicts_and_text(tmp_path, capsys):
    """``--alpha``: an accuracy gap of 0.07 between two groups of 400 (test p ~ 0.02) is a disparity at 0.05 and
    insufficient evidence at 0.01; the verdict rule states the level used."""
    rows = []
    for name, correct in (("A", 320), ("B", 292)):
        for i in range(400):
            y = i % 2
            rows.append([f"{name}{i}", y if i < correct else 1 - y, y, name])
    path = _write(tmp_path / "preds.csv", ["case_id", "pred", "label", "group"], rows)
    verdicts = {}
    for alpha in ("0.05", "0.01"):
        out = tmp_path / f"a{alpha}"
        r = _cli([str(path), "--out", str(out), "--alpha", alpha, "--no-plots"], tmp_path, capsys)
        assert r.returncode == 0, r.stderr
        js = json.loads((out / "report.json").read_text())
        assert js["alpha"] == float(alpha) and f"alpha = {alpha}" in js["verdict_rule"]
        assert f"alpha = {alpha}" in (out / "report.md").read_text()
        verdicts[alpha] = js["figures"]["accuracy_gap"]
    assert verdicts["0.05"]["value"] == pytest.approx(0.07)
    assert 0.01 < verdicts["0.05"]["p_value"] < 0.05
    assert verdicts["0.05"]["verdict"] == "disparity" and verdicts["0.01"]["verdict"] == "insufficient evidence"
    assert _cli([str(path), "--out", str(tmp_path / "bad"), "--alpha", "1.5"], tmp_path, capsys).returncode == 2
