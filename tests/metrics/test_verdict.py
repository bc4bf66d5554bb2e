# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Verdict rules, the homogeneity test (scipy reference) and detectable gaps (statsmodels power reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2
from statsmodels.stats.power import NormalIndPower

from monai_fair.metrics import (
    compute_group_classification_metrics,
    delong_group_auc,
    detectable_gaps,
    disparity_verdict,
    fairness_verdicts,
    homogeneity_test,
)


@pytest.mark.parametrize(
    "est, ci, p, verdict",
    [
        (0.12, [0.05, 0.20], None, "disparity"),  # signed: CI excludes 0, |d| > tol
        (-0.12, [-0.20, -0.05], None, "disparity"),
        (0.03, [0.01, 0.05], None, "no disparity shown"),  # significant but inside the tolerance
        (0.02, [-0.04, 0.06], None, "no disparity shown"),
        (0.05, [-0.10, 0.20], None, "insufficient evidence"),
        (0.12, [0.02, 0.30], 0.2, "insufficient evidence"),  # a range: CI > 0 always; the test decides
        (0.12, [0.02, 0.30], 0.001, "disparity"),
        (float("nan"), [0.0, 0.1], None, "insufficient evidence"),
    ],
)
def test_disparity_verdict_rules(est, ci, p, verdict):
    assert disparity_verdict(est, ci, tol=0.08, p_value=p) == verdict


def test_homogeneity_test_against_scipy_and_delong():
    rng = np.random.default_rng(0)
    v = np.array([0.8, 0.75, 0.7])
    a = rng.normal(size=(3, 3))
    cov = a @ a.T * 1e-3
    p, df = homogeneity_test(torch.tensor(v), torch.tensor(cov))
    lmat = np.array([[-1, 1, 0], [-1, 0, 1]])
    d = lmat @ v
    stat = d @ np.linalg.solve(lmat @ cov @ lmat.T, d)
    assert df == 2 and p == pytest.approx(chi2.sf(stat, 2), rel=1e-9)
    y = rng.integers(0, 2, 900)
    g = rng.integers(0, 3, 900)
    s = np.clip(rng.random(900) * 0.6 + 0.3 * y + 0.1 * (g == 2) * y, 0, 1)
    r = compute_group_classification_metrics(s, y, g, n_bootstrap=100)
    dl = delong_group_auc(s, y, g)
    th = np.array([dl["groups"][k]["auc"] for k in range(3)])
    var = np.array([dl["groups"][k]["se"] ** 2 for k in range(3)])  # iid groups: diagonal covariance
    d = lmat @ th
    stat = d @ np.linalg.solve(lmat @ np.diag(var) @ lmat.T, d)
    assert r["fairness_p_value"]["auc_gap"] == pytest.approx(chi2.sf(stat, 2), rel=1e-6)
    assert "DeLong" in r["fairness_test"]["auc_gap"] and "bootstrap" in r["fairness_test"]["accuracy_gap"]
    verdicts = fairness_verdicts(r, {"auc_gap": 0.02, "tpr_gap": 0.5})
    assert set(verdicts) == {"auc_gap", "tpr_gap"} and verdicts["tpr_gap"]["verdict"] in (
        "no disparity shown",
        "insufficient evidence",
    )


def test_detectable_gaps_against_statsmodels_power():
    rng = np.random.default_rng(1)
    g = np.repeat([0, 1, 2], [400, 120, 200])
    y = rng.integers(0, 2, g.size)
    s = np.clip(rng.random(g.size) * 0.6 + 0.3 * y, 0, 1)
    r = detectable_gaps(g, y=y, y_score=s, alpha=0.05, power=0.8)
    n1, n2 = 120, 200  # the two smallest groups
    d = NormalIndPower().solve_power(effect_size=None, nobs1=n1, alpha=0.05, power=0.8, ratio=n2 / n1)
    p = ((s >= 0.5) == y).mean()
    assert r["figures"]["accuracy"]["detectable_gap"] == pytest.approx(d * math.sqrt(p * (1 - p)), rel=1e-3)
    a = float(delong_group_auc(s, y, np.zeros_like(g))["overall"]["auc"])
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)

    def hm(npos, nneg):
        return (a * (1 - a) + (npos - 1) * (q1 - a * a) + (nneg - 1) * (q2 - a * a)) / (npos * nneg)

    v = [hm((y[g == k] == 1).sum(), (y[g == k] == 0).sum()) for k in (1, 2)]
    assert r["figures"]["auc"]["detectable_gap"] == pytest.approx(2.8015852 * math.sqrt(sum(v)), rel=1e-5)
    assert detectable_gaps(g, y=y, y_score=s, min_group_size=300)["figures"] == {}
    dice = rng.random(g.size)
    sd = dice.std(ddof=1)
    ref = 2.8015852 * sd * math.sqrt(1 / 120 + 1 / 200)
    assert detectable_gaps(g, dice=dice)["figures"]["dice"]["detectable_gap"] == pytest.approx(ref, rel=1e-5)


def test_eodds_p_value_when_fpr_has_no_variance():
    """Every negative is predicted negative (FPR 0 in every group and resample): the FPR test has no p-value, so it
    cannot reject, and the significant TPR gap decides eodds (Bonferroni: 2 p_TPR)."""
    g = np.repeat([0, 1], 200)
    y = np.tile([1, 0], 200)
    tpr = np.where(g == 0, 0.9, 0.3)
    hit = np.random.default_rng(0).random(g.size) < tpr
    s = np.where((y == 1) & hit, 0.9, 0.1)
    r = compute_group_classification_metrics(s, y, g, n_bootstrap=300, seed=1)
    p = r["fairness_p_value"]
    assert math.isnan(p["fpr_gap"]) and p["tpr_gap"] < 1e-6
    assert p["eodds"] == pytest.approx(min(1.0, 2 * p["tpr_gap"]))
    assert r["fairness"]["eodds"] == pytest.approx(r["fairness"]["tpr_gap"])
    assert fairness_verdicts(r, 0.05)["eodds"]["verdict"] == "disparity"


def test_detectable_gaps_never_zero():
    """A pooled rate of 0 (no positive prediction) uses the Jeffreys estimate: a finite positive gap; a zero
    variance without such a fix (AUC 1, constant Dice) and an empty denominator are NaN with a reason."""
    g = np.repeat([0, 1], [40, 60])
    y = np.tile([0, 1], 50)
    s = np.where(y == 1, 0.4, 0.1)  # AUC 1, nothing predicted positive at 0.5
    f = detectable_gaps(g, y=y, y_score=s)["figures"]
    p = 0.5 / 101  # selection rate: x = 0 of n = 100
    ref = 2.8015852 * math.sqrt(p * (1 - p) * (1 / 40 + 1 / 60))
    assert f["selection_rate"]["detectable_gap"] == pytest.approx(ref, rel=1e-6)
    assert "Jeffreys" in f["selection_rate"]["variance_model"]
    for name in ("accuracy", "tpr", "fpr", "selection_rate"):
        assert 0 < f[name]["detectable_gap"] < 1, name
    assert math.isnan(f["auc"]["detectable_gap"]) and "Hanley-McNeil variance is 0" in f["auc"]["reason"]
    dice = detectable_gaps(g, dice=np.full(g.size, 0.8))["figures"]["dice"]
    assert math.isnan(dice["detectable_gap"]) and "no spread" in dice["reason"]
    y0 = np.where(g == 0, 0, y)  # group 0 has no positive: its TPR has no denominator
    f0 = detectable_gaps(g, y=y0, y_score=np.where(y0 == 1, 0.9, 0.1))["figures"]
    assert math.isnan(f0["tpr"]["detectable_gap"]) and "denominator" in f0["tpr"]["reason"]
    assert all(e["detectable_gap"] != 0 for e in (*f.values(), *f0.values()))


def test_detectable_gaps_multiclass():
    """Multi-class scores without y_pred (arg-max) and one-hot labels: accuracy only, as a two-proportion z test."""
    rng = np.random.default_rng(3)
    g = np.repeat([0, 1, 2], [50, 70, 90])
    y = rng.integers(0, 3, g.size)
    s = rng.dirichlet([1, 1, 1], g.size)
    for labels in (y, np.eye(3)[y]):
        f = detectable_gaps(g, y=labels, y_score=s)["figures"]
        assert set(f) == {"accuracy"}
        p = (s.argmax(1) == y).mean()
        ref = 2.8015852 * math.sqrt(p * (1 - p) * (1 / 50 + 1 / 70))
        assert f["accuracy"]["detectable_gap"] == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="y_score"):
        detectable_gaps(g, y=y)


def test_homogeneity_test_singular_covariance():
    """Two of three groups without variance (e.g. FPR 0 on every resample): tested where there is variance."""
    from scipy.stats import chi2

    from monai_fair.metrics.homogeneity import homogeneity_test

    cov = torch.diag(torch.tensor([0.004, 0.0, 0.0], dtype=torch.float64))
    p, df = homogeneity_test(torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64), cov)
    # contrasts (-0.1, -0.1) with covariance [[a, a], [a, a]]: one direction, statistic 0.1^2 / a
    assert df == 1 and p == pytest.approx(chi2.sf(0.1**2 / 0.004, 1))
    assert homogeneity_test(torch.tensor([0.1, 0.0, 0.05], dtype=torch.float64), cov)[0] == 0.0
