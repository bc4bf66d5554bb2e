# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The no-grad scoring path (one-hot matmul of shifted exps) equals the masked-logsumexp autograd path."""

from __future__ import annotations

import pytest
import torch

from monai_fair.methods.snnl import snnl_channel_scores, snnl_per_anchor


@pytest.mark.parametrize(
    "distance,T", [("cosine", 1.0), ("cosine", 0.01), ("sqeuclidean", 20.0), ("sqeuclidean", 0.05)]
)
@pytest.mark.parametrize("legacy", [False, True])
def test_fast_path_equals_autograd_path(distance, T, legacy):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 11, 5, generator=g) * 3
    y = torch.tensor([0, 1, 1, 0, 2, 2, 0, 1, 0, 3, 1])  # group 3 is a singleton
    fast, valid = snnl_per_anchor(x, y, T, distance, legacy)
    slow, valid2 = snnl_per_anchor(x.clone().requires_grad_(True), y, T, distance, legacy)
    assert torch.equal(valid, valid2)
    scale = slow.detach()[:, valid].abs().max().clamp_min(1.0)
    assert float((fast[:, valid] - slow.detach()[:, valid]).abs().max() / scale) < 1e-5
    assert torch.isnan(fast[:, ~valid]).all()


def test_underflowing_numerator_recomputed_exactly():
    # the same-group partner is ~1800/T logit units further than the nearest point: exp underflows in fp32
    x = torch.tensor([[0.0, 0.0], [30.0, 0.0], [0.0, 31.0], [33.0, 30.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1, 1])
    fast, _ = snnl_per_anchor(x, y, 0.5, "sqeuclidean")
    slow, _ = snnl_per_anchor(x.clone().requires_grad_(True), y, 0.5, "sqeuclidean")
    assert torch.isfinite(fast).all() and float(fast.max()) > 100.0
    assert torch.allclose(fast, slow.detach(), rtol=1e-6, atol=1e-4)


def test_channel_scores_check_nan_once_and_match_loop():
    acts = torch.randn(9, 40, 3, 3)
    groups = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1, 2])
    sums, n_valid = snnl_channel_scores(acts, groups, temperature=0.7, chunk_size=7)
    assert n_valid == 8
    for c in range(40):
        terms, valid = snnl_per_anchor(acts[:, c].reshape(9, -1), groups, temperature=0.7)
        assert abs(float(sums[c]) - float(terms[valid].double().sum())) < 1e-5
    for bad in (float("nan"), float("inf"), -float("inf")):
        a = acts.clone()
        a[3, 17, 1, 1] = bad
        for distance in ("cosine", "sqeuclidean"):
            with pytest.raises(ValueError, match="NaN"):
                snnl_channel_scores(a, groups, distance=distance)
