# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Paired model comparison against independent references: brute-force paired DeLong, a plain-loop paired
cluster bootstrap with the same seed, statsmodels' Holm correction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from monai_fair.metrics import compare_models, holm_adjust


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.integers(0, 3, n)
    base = np.round(np.clip(rng.normal(0.4 + 0.15 * y, 0.25), 0, 1), 3)
    other = np.round(np.clip(base + 0.25 * (y - 0.5) + rng.normal(0, 0.05, n), 0, 1), 3)
    return rng, y, g, base, other


def _fig(res, name, scope="overall", group=None):
    return next(f for f in res["figures"] if f["figure"] == name and f["scope"] == scope and f["group"] == group)


def _psi_components(s, pos):
    p, q = s[pos], s[~pos]
    psi = (p[:, None] > q[None]) + 0.5 * (p[:, None] == q[None])
    return psi.mean(), psi.mean(1), psi.mean(0)


def test_paired_delong_equals_brute_force():
    _, y, g, base, other = _data()
    r = compare_models(y, g, base, other, n_bootstrap=50, ci=0.95)
    pos = y == 1
    for scope, grp, m in (("overall", None, np.ones_like(pos)), ("group", 1, g == 1)):
        a1, v10a, v01a = _psi_components(base[m], pos[m])
        a2, v10b, v01b = _psi_components(other[m], pos[m])
        k, n = pos[m].sum(), (~pos[m]).sum()
        var = (np.var(v10b - v10a, ddof=1) / k) + (np.var(v01b - v01a, ddof=1) / n)  # S10 of the difference
        f = _fig(r, "auc", scope, grp)
        assert f["difference"] == pytest.approx(a2 - a1, abs=1e-12)
        half = 1.959963984540054 * math.sqrt(var)
        assert f["ci"] == pytest.approx([a2 - a1 - half, a2 - a1 + half], abs=1e-9)
        assert f["p_value"] == pytest.approx(math.erfc(abs(a2 - a1) / math.sqrt(2 * var)), rel=1e-6)
        assert f["ci_method"] == "paired DeLong" and f["verdict"] == "better"


def test_paired_cluster_bootstrap_equals_plain_loop():
    rng, y, g, base, other = _data(n=300, seed=3)
    pid = rng.integers(0, 80, y.size)
    g = (pid % 3).astype(int)  # groups are a patient attribute
    r = compare_models(y, g, base, other, cluster=pid, n_bootstrap=60, seed=9, group_names=["a", "b", "c"])
    uniq = np.unique(pid)
    draws = np.random.default_rng(9).integers(0, uniq.size, size=(60, uniq.size))
    members = [np.flatnonzero(pid == u) for u in uniq]
    d_acc, d_gap = [], []
    for row in draws:
        i = np.concatenate([members[c] for c in row])
        acc = lambda s, m, i=i: (((s[i] >= 0.5) == y[i])[m]).mean()  # noqa: E731
        per = [[acc(s, g[i] == k) for k in range(3)] for s in (base, other)]
        d_acc.append(acc(other, g[i] == 2) - acc(base, g[i] == 2))
        d_gap.append(np.ptp(per[1]) - np.ptp(per[0]))
    f = _fig(r, "accuracy", "group", 2)
    assert f["ci"] == pytest.approx(np.percentile(d_acc, [2.5, 97.5]), abs=1e-12)
    assert f["group_name"] == "c" and f["ci_method"] == "paired percentile bootstrap, cluster, B=60"
    assert _fig(r, "accuracy_gap", "fairness")["ci"] == pytest.approx(np.percentile(d_gap, [2.5, 97.5]), abs=1e-12)
    z = f["difference"] / np.std(d_acc, ddof=1)
    assert f["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert _fig(r, "auc")["ci_method"] == "paired DeLong, cluster-robust"


def test_holm_against_statsmodels_and_verdicts():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.5, 0.0001])
    ok = ~np.isnan(p)
    ref = multipletests(p[ok], method="holm")[1]
    assert holm_adjust(p)[ok] == pytest.approx(ref) and np.isnan(holm_adjust(p)[4])
    _, y, g, base, other = _data(seed=1)
    r = compare_models(y, g, base, other, n_bootstrap=100, min_group_size=1)
    ps = [f["p_value"] for f in r["figures"] if f["p_value"] is not None]
    assert [f["p_holm"] for f in r["figures"] if f["p_value"] is not None] == pytest.approx(
        multipletests(ps, method="holm")[1]
    )
    assert r["multiple_testing"]["family_size"] == len(ps)
    assert _fig(r, "fpr")["direction"] == "lower" and _fig(r, "auc_gap", "fairness")["direction"] == "lower"
    rev = compare_models(y, g, other, base, n_bootstrap=100)
    assert _fig(rev, "auc")["verdict"] == "worse" and _fig(rev, "worst_group_auc", "fairness")["verdict"] == "worse"
    same = compare_models(y, g, base, base, n_bootstrap=50)
    assert all(f["verdict"] == "no evidence" for f in same["figures"])
    json.dumps(r, allow_nan=False)


def test_seeds_combined_and_suppression():
    rng, y, g, base, other = _data(n=400, seed=2)
    g = g.copy()
    g[:8] = 3  # a small group: suppressed, and the smallest other group with it
    bases = [base, np.clip(base + rng.normal(0, 0.02, y.size), 0, 1)]
    others = [other, np.clip(other + rng.normal(0, 0.02, y.size), 0, 1)]
    r = compare_models(y, g, bases, others, n_bootstrap=40, group_names=["a", "b", "c", "tiny"])
    assert r["n_seeds"] == {"base": 2, "other": 2} and r["suppression"]["suppressed_groups"] == 2
    assert "tiny" not in json.dumps(r) and all(f["group"] in (None, 0, 1, 2) for f in r["figures"])
    single = [compare_models(y, g, b, o, n_bootstrap=40)["figures"] for b, o in zip(bases, others)]
    f = _fig(r, "accuracy")
    per = [next(x for x in s if x["figure"] == "accuracy" and x["scope"] == "overall") for s in single]
    assert f["difference"] == pytest.approx(np.mean([p["difference"] for p in per]))
    assert f["paired_seed_differences"] == pytest.approx([p["difference"] for p in per])
    assert f["base_per_seed"] == pytest.approx([p["base"] for p in per])
    dl = _fig(r, "auc")  # DeLong of the seed-averaged AUC difference
    assert dl["difference"] == pytest.approx(np.mean([_fig({"figures": s}, "auc")["difference"] for s in single]))
    seg = compare_models(None, g, [base, base], [other, other], task="segmentation", n_bootstrap=30)
    assert _fig(seg, "dice")["difference"] == pytest.approx(other.mean() - base.mean())
    assert {f["figure"] for f in seg["figures"]} == {"dice", "dice_gap", "worst_group_dice", "es_dice", "ser"}
