# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair compare`` and the compare report library: case matching by id, seeds, one Holm family
over every comparison, verdicts, suppression, one-line errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from monai_fair.__main__ import main
from monai_fair.report.compare import compare_arrays, compare_prediction_files


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.permutation(np.repeat([0, 1, 2], [150, n - 156, 6]))  # group 2 ("Zebra") is below min_group_size
    y = rng.integers(0, 2, n)
    return rng, g, y


def _scores(rng, g, y, boost):
    return np.round(np.clip(rng.random(y.size) * 0.6 + (0.3 + boost * (g == 0)) * y, 0, 1), 4)


def _csv(path, g, y, s, order, names=("F", "M", "Zebra"), extra_id=None):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "image", "prob_0", "prob_1", "pred", "label", "group"])
        for k in order:
            w.writerow([f"c{k}", f"i{k}.png", f"{1 - s[k]:.4f}", f"{s[k]:.4f}", int(s[k] >= 0.5), y[k], names[g[k]]])
        if extra_id:
            w.writerow([extra_id, "x.png", "0.5", "0.5", 1, 0, "F"])
    return path


def _holm(p):
    """Plain reference Holm step-down adjustment."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    m = p.size
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def test_compare_arrays_two_models_one_holm_family():
    rng, g, y = _data()
    base, a, b = _scores(rng, g, y, 0.0), _scores(rng, g, y, 0.2), _scores(rng, g, y, 0.0)
    res = compare_arrays(y, g, base, {"A": a, "B": b}, group_names=["F", "M", "Zebra"], n_bootstrap=100)
    assert [c["other"] for c in res["comparisons"]] == ["A", "B"]
    figs = [f for c in res["comparisons"] for f in c["figures"]]
    ps = [f["p_value"] for f in figs if f["p_value"] is not None]
    np.testing.assert_allclose([f["p_holm"] for f in figs if f["p_value"] is not None], _holm(ps), rtol=1e-9)
    assert res["multiple_testing"]["family_size"] == len(ps)
    for c, s in zip(res["comparisons"], (a, b)):
        f = next(f for f in c["figures"] if f["figure"] == "auc" and f["scope"] == "overall")
        assert f["difference"] == pytest.approx(roc_auc_score(y, s) - roc_auc_score(y, base))
        m = g == 0
        f0 = next(f for f in c["figures"] if f["figure"] == "auc" and f["group_name"] == "F")
        assert f0["difference"] == pytest.approx(roc_auc_score(y[m], s[m]) - roc_auc_score(y[m], base[m]))
        for f in c["figures"]:
            p = f["p_holm"]
            expect = "no evidence" if p is None or p >= 0.05 else None
            assert f["verdict"] == expect or (expect is None and f["verdict"] in ("better", "worse", "higher", "lower"))
    a_auc_f = next(f for f in res["comparisons"][0]["figures"] if f["figure"] == "auc" and f["group_name"] == "F")
    assert a_auc_f["verdict"] == "better"  # a large, real improvement in group F
    assert "Zebra" not in json.dumps(res)  # n = 6 < 10: suppressed, never named
    assert res["groups"] == {"F": 150}  # M (144) is hidden too: overall minus F must pool two groups


def test_compare_cli_matching_seeds_and_report(tmp_path, capsys):
    rng, g, y = _data(seed=1)
    n = y.size
    s = {f"{m}_s{k}": _scores(rng, g, y, b) for m, b in (("erm", 0.0), ("fairdi", 0.15)) for k in range(2)}
    files = {k: _csv(tmp_path / f"{k}.csv", g, y, v, rng.permutation(n)) for k, v in s.items()}
    args = ["compare", "--base", str(files["erm_s0"]), str(files["erm_s1"])]
    args += ["--other", str(files["fairdi_s0"]), str(files["fairdi_s1"]), "--out", str(tmp_path / "out")]
    assert main([*args, "--n-bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "fairdi vs erm:" in out and "better" in out
    js = json.loads((tmp_path / "out" / "compare.json").read_text())
    c = js["comparisons"][0]
    assert js["base"] == "erm" and c["other"] == "fairdi" and c["n_seeds"] == {"base": 2, "other": 2}
    f = next(f for f in c["figures"] if f["figure"] == "auc" and f["scope"] == "overall")
    expect = np.mean([roc_auc_score(y, s[f"fairdi_s{k}"]) - roc_auc_score(y, s[f"erm_s{k}"]) for k in range(2)])
    assert f["difference"] == pytest.approx(expect, abs=1e-9)
    assert f["paired_seed_differences"] == pytest.approx(
        [roc_auc_score(y, s[f"fairdi_s{k}"]) - roc_auc_score(y, s[f"erm_s{k}"]) for k in range(2)]
    )
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "Holm" in md and "## fairdi vs erm" in md and "## Glossary" in md
    assert (tmp_path / "out" / "compare_fairdi.png").stat().st_size > 0
    for p in (tmp_path / "out").iterdir():
        assert b"Zebra" not in p.read_bytes()


def test_compare_positional_and_errors(tmp_path, capsys):
    rng, g, y = _data(seed=2)
    n = y.size
    a = _csv(tmp_path / "a.csv", g, y, _scores(rng, g, y, 0), range(n))
    b = _csv(tmp_path / "b.csv", g, y, _scores(rng, g, y, 0.1), rng.permutation(n))
    c = _csv(tmp_path / "c.csv", g, y, _scores(rng, g, y, 0.1), range(1, n), extra_id="zz9")
    res = compare_prediction_files(None, [a], {"b": [b]}, n_bootstrap=20)
    assert res["n_cases"] == n and res["base"] == "a"
    assert main(["compare", str(a), str(b), str(c), "--out", str(tmp_path / "o"), "--n-bootstrap", "20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "c.csv" in err and "zz9" in err and "c0" in err  # both directions listed
    y2 = y.copy()
    y2[5] = 1 - y2[5]
    d = _csv(tmp_path / "d.csv", g, y2, _scores(rng, g, y, 0.1), range(n))
    assert main(["compare", str(a), str(d), "--out", str(tmp_path / "o"), "--n-bootstrap", "20"]) == 2
    assert "'c5' has another label" in capsys.readouterr().err
    assert main(["compare", str(a), "--out", str(tmp_path / "o")]) == 2
    assert "at least one OTHER" in capsys.readouterr().err


def test_compare_segmentation_dice_columns(tmp_path):
    rng = np.random.default_rng(3)
    n = 60
    g = np.repeat([0, 1], n // 2)
    paths = {}
    dice = {}
    for m, gain in (("base", 0.0), ("new", 0.1)):
        d = np.clip(0.7 + gain * (g == 1) - 0.1 * g + rng.normal(0, 0.05, n), 0, 1)
        dice[m] = d
        paths[m] = tmp_path / f"{m}.csv"
        with paths[m].open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["case_id", "group", "dice", "iou"])
            w.writerows([[f"k{i}", ["A", "B"][g[i]], d[i], d[i] / (2 - d[i])] for i in range(n)])
    res = compare_prediction_files(tmp_path / "o", [paths["base"]], {"new": [paths["new"]]}, task="segmentation")
    f = next(f for f in res["comparisons"][0]["figures"] if f["figure"] == "dice_gap")
    gap = lambda d: abs(d[g == 0].mean() - d[g == 1].mean())  # noqa: E731
    assert f["difference"] == pytest.approx(gap(dice["new"]) - gap(dice["base"]))
    assert (tmp_path / "o" / "compare.md").is_file()
    # the CLI detects the task from the dice column
    assert (
        main(["compare", str(paths["base"]), str(paths["new"]), "--out", str(tmp_path / "o2"), "--n-bootstrap", "20"])
        == 0
    )
    js = json.loads((tmp_path / "o2" / "compare.json").read_text())
    assert js["task"] == "segmentation" and js["comparisons"][0]["other"] == "new"
