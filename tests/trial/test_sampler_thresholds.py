# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group-balanced sampler against counts; the trial's threshold scores (the per-group thresholds themselves are tested
in tests/methods/group_thresholds)."""

from __future__ import annotations

import numpy as np
import torch

from monai_fair.data import GroupBalancedSampler
from monai_fair.trial.report import threshold_scores


def test_sampler_draws_cells_equally():
    # cells: (0,0) 5 items, (0,1) 15, (1,0) 60, (1,1) 20
    groups = [0] * 20 + [1] * 80
    labels = [0] * 5 + [1] * 15 + [0] * 60 + [1] * 20
    data = [{"group": g, "label": y} for g, y in zip(groups, labels)]
    sampler = GroupBalancedSampler(data, num_samples=40000, seed=3)
    idx = torch.tensor(list(sampler))
    cell = torch.tensor(groups)[idx] * 2 + torch.tensor(labels)[idx]
    share = torch.bincount(cell, minlength=4).double() / idx.numel()
    torch.testing.assert_close(share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.01, rtol=0)
    assert len(GroupBalancedSampler(data)) == 100  # as many draws per epoch as items
    assert list(GroupBalancedSampler(data, seed=1)) == list(GroupBalancedSampler(data, seed=1))
    by_group = torch.tensor(list(GroupBalancedSampler(data, by_label=False, num_samples=20000, seed=0)))
    assert abs(float((torch.tensor(groups)[by_group] == 0).double().mean()) - 0.5) < 0.02


def test_threshold_scores_map_threshold_to_half():
    rng = np.random.default_rng(1)
    s, t = rng.random(500), rng.uniform(0.05, 0.95, 500)
    m = threshold_scores(s, t)
    assert np.array_equal(m >= 0.5, s >= t)
    order = np.argsort(s)
    assert np.all(np.diff(threshold_scores(s[order], np.full(500, 0.3))) >= 0)  # monotone for one threshold
