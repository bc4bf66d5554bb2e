# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""ECE, Brier and reliability data by group against sklearn (calibration_curve, brier_score_loss)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from monai_fair.metrics import compute_group_calibration


def _data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 3, n)
    p = np.clip(rng.beta(2, 2, n) + 0.05 * g, 0, 1)
    p[:5] = [0.0, 0.1, 0.2, 1.0, 0.5]  # bin edges
    y = (rng.random(n) < np.clip(p + 0.1 * (g == 2), 0, 1)).astype(int)
    return p, y, g


def _ece_ref(p, y, n_bins):
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p), minlength=n_bins)
    counts = counts[counts > 0]
    return float((counts / p.size * np.abs(prob_true - prob_pred)).sum()), prob_true, prob_pred


def test_binary_ece_brier_reliability_against_sklearn():
    p, y, g = _data()
    r = compute_group_calibration(p, y, g, n_bins=8)
    for k in range(3):
        m = g == k
        ece, pt, pp = _ece_ref(p[m], y[m], 8)
        assert r["groups"][k]["ece"] == pytest.approx(ece, abs=1e-12)
        assert r["groups"][k]["brier"] == pytest.approx(brier_score_loss(y[m], p[m]), abs=1e-12)
        rel = r["reliability"]["groups"][k]
        nz = np.array(rel["count"]) > 0
        assert np.array(rel["accuracy"])[nz] == pytest.approx(pt)
        assert np.array(rel["confidence"])[nz] == pytest.approx(pp)
    assert r["overall"]["ece"] == pytest.approx(_ece_ref(p, y, 8)[0], abs=1e-12)
    eces = [r["groups"][k]["ece"] for k in range(3)]
    assert r["fairness"]["ece_gap"] == pytest.approx(max(eces) - min(eces))
    assert len(r["reliability"]["bin_edges"]) == 9


def test_multiclass_top_label_and_brier():
    rng = np.random.default_rng(1)
    prob = rng.dirichlet(np.ones(3), 400)
    y = rng.integers(0, 3, 400)
    g = rng.integers(0, 2, 400)
    r = compute_group_calibration(prob, y, g, n_bins=5)
    m = g == 1
    top, correct = prob[m].max(1), (prob[m].argmax(1) == y[m]).astype(int)
    assert r["groups"][1]["ece"] == pytest.approx(_ece_ref(top, correct, 5)[0], abs=1e-12)
    assert r["groups"][1]["brier"] == pytest.approx(brier_score_loss(y[m], prob[m], labels=[0, 1, 2]), abs=1e-12)


def test_intervals_exact_and_moment_draws_agree_and_suppression():
    p, y, g = _data(n=3000, seed=2)
    exact = compute_group_calibration(p, y, g, n_bootstrap=300, seed=3)
    fast = compute_group_calibration(p, y, g, n_bootstrap=300, seed=3, exact_max_elements=0)
    assert "first two moments" in fast["ci_method"]["ece"] and "moments" not in exact["ci_method"]["ece"]
    for k in ("ece", "brier"):
        lo, hi = exact["groups"][1]["ci"][k]
        flo, fhi = fast["groups"][1]["ci"][k]
        assert lo <= exact["groups"][1][k] <= hi
        assert abs(flo - lo) < 0.25 * (hi - lo) and abs(fhi - hi) < 0.25 * (hi - lo)
    small = compute_group_calibration(p[:40], y[:40], g[:40], min_group_size=30, n_bins=4)
    assert small["groups"] == {} and math.isnan(small["fairness"]["ece_gap"])
    assert small["reliability"]["groups"] == {} and sum(small["reliability"]["overall"]["count"]) == 40
