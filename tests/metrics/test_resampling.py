# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The resampling core: cluster bootstrap against a plain loop with the same seed, multinomial cell counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_fair.metrics import (
    bootstrap_cell_counts,
    bootstrap_weights,
    compute_group_classification_metrics,
    compute_group_segmentation_metrics,
    resampling,
)


def _clustered(n_patients=30, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_patients)
    pid = np.repeat(np.arange(n_patients) * 7 + 3, sizes)  # arbitrary ids; numbered in np.unique order
    grp = np.repeat(rng.integers(0, 2, n_patients), sizes)
    return rng, pid, grp


def _plain_cluster_replicates(pid, seed, b):
    """Replicate r takes the images of the clusters drawn by rng.integers(0, U, (B, U))[r]."""
    uniq = np.unique(pid)
    draws = np.random.default_rng(seed).integers(0, uniq.size, size=(b, uniq.size))
    members = [np.flatnonzero(pid == u) for u in uniq]
    return [np.concatenate([members[c] for c in row]) for row in draws]


def test_cluster_bootstrap_segmentation_equals_plain_loop():
    rng, pid, grp = _clustered()
    dice = rng.random(pid.size)
    r = compute_group_segmentation_metrics(dice, None, grp, n_bootstrap=40, seed=11, cluster=pid)
    reps = _plain_cluster_replicates(pid, 11, 40)
    means = np.array([[dice[i][grp[i] == k].mean() for k in (0, 1)] for i in reps])
    overall = np.array([dice[i].mean() for i in reps])
    assert r["groups"][1]["ci"]["dice"] == pytest.approx(np.percentile(means[:, 1], [2.5, 97.5]), abs=1e-12)
    assert r["overall"]["ci"]["dice"] == pytest.approx(np.percentile(overall, [2.5, 97.5]), abs=1e-12)
    gap = np.abs(means[:, 0] - means[:, 1])
    assert r["fairness_ci"]["dice_gap"] == pytest.approx(np.percentile(gap, [2.5, 97.5]), abs=1e-12)
    assert r["ci_method"]["dice"] == "percentile bootstrap, cluster, B=40"


def test_cluster_bootstrap_classification_counts_equal_plain_loop():
    rng, pid, grp = _clustered(seed=1)
    y = rng.integers(0, 2, pid.size)
    s = rng.random(pid.size)
    r = compute_group_classification_metrics(s, y, grp, n_bootstrap=30, seed=5, cluster=pid)
    reps = _plain_cluster_replicates(pid, 5, 30)
    acc = np.array([[((s[i] >= 0.5) == y[i])[grp[i] == k].mean() for k in (0, 1)] for i in reps])
    tpr = np.array([((s[i] >= 0.5) & (y[i] == 1)).sum() / (y[i] == 1).sum() for i in reps])
    assert r["groups"][0]["ci"]["accuracy"] == pytest.approx(np.percentile(acc[:, 0], [2.5, 97.5]), abs=1e-12)
    assert r["overall"]["ci"]["tpr"] == pytest.approx(np.percentile(tpr, [2.5, 97.5]), abs=1e-12)
    gap = np.abs(acc[:, 0] - acc[:, 1])
    assert r["fairness_ci"]["accuracy_gap"] == pytest.approx(np.percentile(gap, [2.5, 97.5]), abs=1e-12)
    # the same draws give the per-sample weights
    w = next(bootstrap_weights(pid.size, 30, 5, cluster=pid)).numpy()
    assert np.array_equal(w[3], np.bincount(reps[3], minlength=pid.size))


def test_multinomial_cell_counts_match_resampling_moments():
    cell = np.repeat(np.arange(4), [10, 30, 40, 20])
    c = torch.cat(list(bootstrap_cell_counts(cell, 5, 4000, seed=0, max_elements=4000))).numpy()
    assert c.shape == (4000, 5) and (c.sum(1) == 100).all() and (c[:, 4] == 0).all()
    p = np.array([0.1, 0.3, 0.4, 0.2])
    assert c[:, :4].mean(0) == pytest.approx(100 * p, abs=0.5)
    assert np.cov(c[:, :4].T) == pytest.approx(100 * (np.diag(p) - np.outer(p, p)), abs=1.2)
    # stratified: every stratum keeps its size; cells of a stratum are multinomial within it
    strata = np.array([0, 0, 1, 1, 1])
    cs = torch.cat(list(bootstrap_cell_counts(cell, 5, 500, seed=1, cell_stratum=strata))).numpy()
    assert (cs[:, :2].sum(1) == 40).all() and (cs[:, 2:].sum(1) == 60).all()
    assert cs[:, 0].mean() == pytest.approx(10, abs=0.6)


def test_stratified_cluster_needs_nested_clusters():
    g = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="one stratum"):
        next(bootstrap_weights(4, 2, 0, strata=g, cluster=[1, 2, 2, 3]))
    w = torch.cat(list(bootstrap_weights(4, 50, 0, strata=g, cluster=[1, 1, 2, 3])))
    assert torch.equal(w[:, 0], w[:, 1]) and (w[:, 0] == 1).all()  # the only patient of group 0, kept whole
    assert (w[:, 2:].sum(1) == 2).all() and (w[:, 2].std() > 0)  # group 1: two patients drawn twice
    with pytest.raises(ValueError, match="cluster"):
        compute_group_segmentation_metrics([0.1, 0.2], None, [0, 1], n_bootstrap=2, cluster=[1])


@pytest.mark.parametrize("stratified", [False, True])
def test_cluster_cell_counts_by_type_equal_the_drawn_clusters(stratified):
    """Clusters with equal cell counts are summed as one type: the counts equal those of the per-sample weights
    drawn from the same seed (every drawn cluster adds its cells), exactly."""
    rng = np.random.default_rng(3)
    pid = np.repeat(np.arange(3000), rng.integers(1, 4, 3000))  # 3000 patients with 1-3 cases
    grp = (pid % 3).astype(np.int64)  # patients nested in groups (stratified cluster bootstrap)
    cell = grp * 4 + rng.integers(0, 4, pid.size)
    strata = np.arange(12) // 4 if stratified else None
    got = torch.cat(list(bootstrap_cell_counts(cell, 12, 60, seed=9, cell_stratum=strata, cluster=pid))).numpy()
    w = torch.cat(list(bootstrap_weights(pid.size, 60, 9, strata=grp if stratified else None, cluster=pid))).numpy()
    want = np.stack([np.bincount(cell, weights=r, minlength=12) for r in w])
    assert np.array_equal(got, want)
    cl, u = resampling.cluster_index(pid, pid.size)
    assert resampling._cluster_types(cl, cell, u, 12)[1].shape[0] < 300  # few types


def test_cluster_cell_counts_without_types_equal_the_drawn_clusters():
    """Every cluster its own type (many cells): the sparse count-matrix path gives the same exact counts."""
    rng = np.random.default_rng(4)
    pid = np.repeat(np.arange(200), 30)
    cell = rng.integers(0, 200, pid.size)
    cl, u = resampling.cluster_index(pid, pid.size)
    assert resampling._cluster_types(cl, cell, u, 200) is None
    got = torch.cat(list(bootstrap_cell_counts(cell, 200, 40, seed=2, cluster=pid))).numpy()
    w = torch.cat(list(bootstrap_weights(pid.size, 40, 2, cluster=pid))).numpy()
    assert np.array_equal(got, np.stack([np.bincount(cell, weights=r, minlength=200) for r in w]))
