# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""DeLong intervals against a brute-force O(n_pos * n_neg) Mann-Whitney computation written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from monai_fair.metrics import DeLongAUC, compute_group_classification_metrics, delong_group_auc


def _components(s: np.ndarray, pos: np.ndarray):
    """Brute force: psi matrix over all (positive, negative) pairs -> AUC, V10 (per positive), V01 (per negative)."""
    p, q = s[pos], s[~pos]
    psi = (p[:, None] > q[None]).astype(float) + 0.5 * (p[:, None] == q[None])
    return psi.mean(), psi.mean(1), psi.mean(0)


def _delong_var(s, pos):
    a, v10, v01 = _components(s, pos)
    return a, v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size


def _data(n=240, groups=3, seed=0, decimals=2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.integers(0, groups, n)
    s = np.round(np.clip(rng.random(n) * 0.6 + 0.3 * y, 0, 1), decimals)  # many ties
    return s, y, g


def test_group_and_overall_variance_equal_brute_force():
    s, y, g = _data()
    r = delong_group_auc(s, y, g, ci=0.9)
    z = 1.6448536269514722
    for k in range(3):
        m = g == k
        a, v = _delong_var(s[m], y[m] == 1)
        e = r["groups"][k]
        assert e["auc"] == pytest.approx(a, abs=1e-12) and e["auc"] == pytest.approx(roc_auc_score(y[m], s[m]))
        assert e["se"] ** 2 == pytest.approx(v, rel=1e-10)
        assert e["ci"] == pytest.approx([a - z * math.sqrt(v), a + z * math.sqrt(v)], abs=1e-9)
    a, v = _delong_var(s, y == 1)
    assert r["overall"]["auc"] == pytest.approx(a) and r["overall"]["se"] ** 2 == pytest.approx(v, rel=1e-10)
    # iid groups share no cases: the variance of a difference is the sum of the two variances
    d01 = [d for d in r["differences"] if d["groups"] == [0, 1]][0]
    assert d01["se"] ** 2 == pytest.approx(r["groups"][0]["se"] ** 2 + r["groups"][1]["se"] ** 2, rel=1e-10)
    zz = d01["difference"] / d01["se"]
    assert d01["p_value"] == pytest.approx(math.erfc(abs(zz) / math.sqrt(2)), rel=1e-9)


def test_paired_covariance_equals_brute_force():
    s, y, g = _data(seed=4)
    rng = np.random.default_rng(1)
    s2 = np.round(np.clip(s + rng.normal(0, 0.15, s.size), 0, 1), 2)
    pos = y == 1
    d = DeLongAUC(torch.tensor(np.stack([s, s2]))[..., None], torch.tensor(pos)[:, None], torch.tensor(g), 3)
    cov = d.covariance()
    a1, v10a, v01a = _components(s, pos)
    a2, v10b, v01b = _components(s2, pos)
    m, n = pos.sum(), (~pos).sum()
    s10 = ((v10a - a1) * (v10b - a2)).sum() / (m - 1)
    s01 = ((v01a - a1) * (v01b - a2)).sum() / (n - 1)
    k = 4  # G + 1 entries per model; overall is the last one
    assert float(cov[k - 1, 2 * k - 1]) == pytest.approx(s10 / m + s01 / n, rel=1e-10)
    assert float(d.theta[1, -1]) == pytest.approx(a2)
    mg = g == 2  # the same within a group
    b1, w10a, w01a = _components(s[mg], pos[mg])
    b2, w10b, w01b = _components(s2[mg], pos[mg])
    mm, nn = pos[mg].sum(), (~pos[mg]).sum()
    ref = ((w10a - b1) * (w10b - b2)).sum() / (mm - 1) / mm + ((w01a - b1) * (w01b - b2)).sum() / (nn - 1) / nn
    assert float(cov[2, k + 2]) == pytest.approx(ref, rel=1e-10)


def test_cluster_robust_against_plain_reference():
    s, y, g = _data(n=150, seed=2)
    cl = np.random.default_rng(3).integers(0, 40, s.size)
    pos = y == 1
    r = delong_group_auc(s, y, g, cluster=cl)
    # reference: influence of every case from the brute-force components, summed per cluster (sandwich)
    a, v10, v01 = _components(s, pos)
    phi = np.zeros(s.size)
    phi[pos] = (v10 - a) / pos.sum()
    phi[~pos] = (v01 - a) / (~pos).sum()
    u = np.unique(cl)
    sums = np.array([phi[cl == c].sum() for c in u])
    var = u.size / (u.size - 1) * (sums**2).sum()
    assert r["overall"]["se"] ** 2 == pytest.approx(var, rel=1e-10)
    assert r["ci_method"] == "DeLong, cluster-robust"
    # one case per cluster: the sandwich is DeLong up to the (m-1)/m, (n-1)/n, N/(N-1) factors
    one = delong_group_auc(s, y, g, cluster=np.arange(s.size))
    assert one["overall"]["se"] == pytest.approx(delong_group_auc(s, y, g)["overall"]["se"], rel=0.02)


def test_multiclass_macro_and_classification_intervals():
    rng = np.random.default_rng(5)
    n, c = 300, 3
    y = rng.integers(0, c, n)
    g = rng.integers(0, 2, n)
    p = rng.dirichlet(np.ones(c), n)
    p[np.arange(n), y] += 0.3
    p /= p.sum(1, keepdims=True)
    r = delong_group_auc(p, y, g)
    for k in range(2):
        m = g == k
        assert r["groups"][k]["auc"] == pytest.approx(roc_auc_score(y[m], p[m], multi_class="ovr"), abs=1e-12)
        # variance of the macro mean: (1/C^2) sum over class pairs of the brute-force influence products
        infl = []
        for cl in range(c):
            pos = y[m] == cl
            a, v10, v01 = _components(p[m][:, cl], pos)
            f = np.zeros(m.sum())
            f[pos] = (v10 - a) / pos.sum() * math.sqrt(pos.sum() / (pos.sum() - 1))
            f[~pos] = (v01 - a) / (~pos).sum() * math.sqrt((~pos).sum() / ((~pos).sum() - 1))
            infl.append(f)
        ref = (np.mean(infl, 0) ** 2).sum()
        assert r["groups"][k]["se"] ** 2 == pytest.approx(ref, rel=1e-10)
    res = compute_group_classification_metrics(p, y, g, n_bootstrap=50)
    assert res["ci_method"]["auc"] == "DeLong" and "parametric draws" in res["ci_method"]["auc_gap"]
    assert res["groups"][1]["ci"]["auc"] == pytest.approx(r["groups"][1]["ci"], abs=1e-12)
    assert len(res["auc_differences"]) == 1


def test_undefined_variance_and_suppression():
    s = np.array([0.9, 0.1, 0.8, 0.7, 0.3, 0.2, 0.6, 0.4] * 3)
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 3)
    g = np.array([0] * 16 + [1] * 8)
    y[16:] = [1, 0, 0, 0, 0, 0, 0, 0]  # group 1: one positive -> AUC defined, DeLong variance is not
    r = delong_group_auc(s, y, g)
    assert not math.isnan(r["groups"][1]["auc"]) and math.isnan(r["groups"][1]["se"])
    sup = delong_group_auc(s, y, g, min_group_size=10)  # group 1 (n=8) suppressed -> group 0 hidden too
    assert sup["groups"] == {} and sup["differences"] == [] and sup["suppression"]["suppressed_groups"] == 2
