# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Issue 18 items 9, 10 and 12 (statistics on edge-case data): no singular-matrix crash in the homogeneity test
(NaN with a reason), no equivalence verdict on a degenerate interval or an underpowered comparison, intervals
inside the figure's range."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from monai_fair.metrics import compute_group_classification_metrics, disparity_verdict, homogeneity_test
from monai_fair.metrics.homogeneity import homogeneity_reason


def test_singular_contrast_covariance_no_solver_error():
    # group values (a, 2a, 3a) on every resample: both contrasts have a variance, their covariance is rank 1
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    cov = 0.01 * torch.outer(v, v)
    # differences along the direction with variance only: a 1-df test
    p, df, reason = homogeneity_reason(torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64), cov)
    assert df == 1 and reason is None and 0.0 < p < 1.0
    # a difference where there is no variance: certain (p = 0), as with a zero covariance
    assert homogeneity_test(torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), cov)[0] == 0.0
    # no variance and no difference: NaN with the reason
    p, _, reason = homogeneity_reason(torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64), torch.zeros(3, 3))
    assert math.isnan(p) and "zero variance" in reason


def test_eight_rows_min_group_size_one_does_not_crash():
    # seed 0 crashed with LinAlgError before the fix (three groups of 1-5 cases, one group all positives)
    rng = np.random.default_rng(0)
    g, y, s = rng.integers(0, 3, 8), rng.integers(0, 2, 8), rng.random(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = compute_group_classification_metrics(s, y, g, n_bootstrap=100, min_group_size=1)
    for f, p in res["fairness_p_value"].items():  # every missing p-value says why
        assert p == p or "no p-value:" in res["fairness_test"][f], f


def test_many_small_inputs_never_raise():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        g, y, s = rng.integers(0, 3, 8), rng.integers(0, 2, 8), rng.random(8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compute_group_classification_metrics(s, y, g, n_bootstrap=60, min_group_size=1)


def test_no_equivalence_on_degenerate_interval():
    assert disparity_verdict(0.0, [0.0, 0.0], 0.05, p_value=float("nan")) == "insufficient evidence"
    assert disparity_verdict(0.0, [0.0, 0.0], 0.05) == "insufficient evidence"
    assert disparity_verdict(0.0, [0.0, 0.01], 0.05, p_value=0.9) == "no disparity shown"


def test_no_equivalence_when_detectable_gap_exceeds_tolerance():
    # every group TPR 1 on 6 positives: detectable gap 0.311 > tolerance 0.05
    assert disparity_verdict(0.0, [0.0, 0.02], 0.05, 0.9, detectable_gap=0.311) == "insufficient evidence"
    assert disparity_verdict(0.0, [0.0, 0.02], 0.05, 0.9, detectable_gap=float("nan")) == "insufficient evidence"
    assert disparity_verdict(0.0, [0.0, 0.02], 0.05, 0.9, detectable_gap=0.04) == "no disparity shown"


def test_auc_figure_intervals_inside_range():
    # 8 cases: DeLong draws around AUCs near 0/1 used to give auc_gap intervals above 1 and negative worst AUCs
    rng = np.random.default_rng(0)
    s = rng.random(8)
    y = np.array([0, 1] * 4)
    g = np.array([0] * 4 + [1] * 4)
    res = compute_group_classification_metrics(s, y, g, n_bootstrap=400, min_group_size=1)
    for f in ("auc_gap", "worst_group_auc", "es_auc"):
        lo, hi = res["fairness_ci"][f]
        assert 0.0 <= lo <= hi <= 1.0, (f, lo, hi)
    for d in res["auc_differences"]:
        assert -1.0 <= d["ci"][0] <= d["ci"][1] <= 1.0


def _one_class_group(n=600, seed=1):
    rng = np.random.default_rng(seed)
    g, y = rng.integers(0, 3, n), rng.integers(0, 2, n)
    y[g == 2] = 0  # group C: negatives only, its AUC is undefined
    base = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)  # AUC ~0.94
    other = np.clip(0.15 * y + rng.normal(0.4, 0.25, n), 0, 1)  # AUC ~0.63
    return y, g, base, other


def test_compare_keeps_auc_tests_when_one_group_has_one_class():
    from monai_fair.metrics import compare_models

    y, g, base, other = _one_class_group()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = compare_models(y, g, base, other, n_bootstrap=100, group_names=["A", "B", "C"])
    auc = {(f["scope"], f["group_name"]): f for f in r["figures"] if f["figure"] == "auc"}
    for key in (("overall", None), ("group", "A"), ("group", "B")):
        f = auc[key]
        assert f["base"] > 0.9 and f["other"] < 0.72
        assert f["p_value"] is not None and f["verdict"] == "worse", key  # was "no evidence" (NaN covariance)
        assert f["ci"][1] < 0
    c = auc[("group", "C")]
    assert c["verdict"] == "undefined" and "one class" in c["undefined"]


def test_paired_auc_difference_interval_inside_range():
    from monai_fair.metrics import compare_models

    rng = np.random.default_rng(3)
    y, g = np.array([0, 1] * 6), np.array([0] * 6 + [1] * 6)
    base = np.where(y == 1, 0.9, 0.1) + rng.normal(0, 0.01, 12)
    other = np.where(y == 1, 0.1, 0.9) + rng.normal(0, 0.01, 12)
    base[[0, 1]], other[[0, 1]] = base[[1, 0]], other[[1, 0]]  # AUCs near 1 and 0: difference near -1, wide SE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = compare_models(y, g, base, other, n_bootstrap=50, min_group_size=1)
    for f in r["figures"]:
        if f["figure"] == "auc" and f["ci"][0] is not None:
            assert -1.0 <= f["ci"][0] <= f["ci"][1] <= 1.0, f
