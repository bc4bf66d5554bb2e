# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""SoftNearestNeighborLoss against a naive per-anchor loop of the textbook formula (Frosst et al. 2019)."""

from __future__ import annotations

import math

import pytest
import torch

from monai_fair.methods.snnl import SoftNearestNeighborLoss, compute_snnl, snnl_per_anchor


def naive_snnl(x, y, T, distance, legacy=False):
    """Textbook SNNL with explicit loops (float64); anchors without a same-label partner are skipped."""
    x = x.reshape(x.shape[0], -1).double()
    b = x.shape[0]

    def d(i, j):
        if distance == "cosine":
            return max(0.0, 1.0 - float(torch.dot(x[i], x[j]) / (x[i].norm() * x[j].norm())))
        return float(((x[i] - x[j]) ** 2).sum())

    terms, dropped = [], 0
    for i in range(b):
        num = sum(math.exp(-d(i, j) / T) for j in range(b) if j != i and y[j] == y[i])
        den = sum(math.exp(-d(i, k) / T) for k in range(b) if k != i)
        if legacy:
            num += 1.0  # the public SCP code's self term
        elif not any(y[j] == y[i] for j in range(b) if j != i):
            dropped += 1
            continue
        terms.append(-math.log(num / den))
    return sum(terms) / len(terms), dropped


@pytest.mark.parametrize("distance,T", [("cosine", 1.0), ("cosine", 0.3), ("sqeuclidean", 20.0), ("sqeuclidean", 5.0)])
@pytest.mark.parametrize("legacy", [False, True])
def test_matches_textbook_formula(distance, T, legacy):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(13, 2, 3, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 1, 0, 2, 1, 0, 3, 1, 0])  # group 3 has one sample
    loss, dropped = compute_snnl(x, y, temperature=T, distance=distance, legacy_self_term=legacy)
    ref, ref_dropped = naive_snnl(x, y, T, distance, legacy)
    assert abs(float(loss) - ref) < 1e-5
    assert dropped == ref_dropped == (0 if legacy else 1)


def test_log_space_no_underflow():
    # far-apart points and a small temperature: exp(-d/T) underflows in a direct implementation
    x = torch.tensor([[0.0, 0.0], [30.0, 0.0], [0.0, 31.0], [33.0, 30.0]])
    y = torch.tensor([0, 0, 1, 1])
    loss, _ = compute_snnl(x, y, temperature=0.5, distance="sqeuclidean")
    # anchor 0: num d=900, den min d=900 -> term log(e^{-1800}+e^{-1922}+e^{-3978}) - (-1800) ~ 0
    d = torch.cdist(x.double(), x.double()) ** 2
    ref = []
    for i in range(4):
        lg = -d[i] / 0.5
        lg[i] = -float("inf")
        same = (y == y[i]) & (torch.arange(4) != i)
        ref.append(float(torch.logsumexp(lg, 0) - torch.logsumexp(lg[same], 0)))
    assert torch.isfinite(loss)
    assert abs(float(loss) - sum(ref) / 4) < 1e-4


def test_one_group_batch_is_zero_and_legacy_negative():
    x = torch.randn(6, 4)
    y = torch.zeros(6, dtype=torch.long)
    loss, dropped = compute_snnl(x, y)
    assert dropped == 0 and abs(float(loss)) < 1e-6  # num == den for every anchor
    legacy, _ = compute_snnl(x, y, legacy_self_term=True)
    assert float(legacy) < 0  # the public code's quirk: (1 + S) / S > 1


def test_group_with_one_sample_dropped_and_counted():
    x = torch.randn(5, 3)
    y = torch.tensor([0, 0, 0, 0, 1])
    terms, valid = snnl_per_anchor(x, y)
    assert valid.tolist() == [True, True, True, True, False]
    assert torch.isnan(terms[4]) and torch.isfinite(terms[:4]).all()
    loss_fn = SoftNearestNeighborLoss()
    loss = loss_fn(x, y)
    assert loss_fn.last_num_dropped == 1
    assert abs(float(loss) - float(terms[:4].mean())) < 1e-6


def test_all_singletons_gives_zero_with_graph():
    x = torch.randn(3, 4, requires_grad=True)
    loss_fn = SoftNearestNeighborLoss()
    with pytest.warns(UserWarning, match="no anchor"):
        loss = loss_fn(x, torch.tensor([0, 1, 2]))
    assert float(loss) == 0.0 and loss_fn.last_num_dropped == 3
    loss.backward()
    assert x.grad is not None


def test_regulariser_gradient_and_fp32_under_autocast():
    x = torch.randn(8, 16, requires_grad=True)
    y = torch.tensor([0, 1] * 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = SoftNearestNeighborLoss(temperature=0.5)(x.bfloat16(), y)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_batched_channels_equal_single():
    x = torch.randn(4, 9, 7)  # 4 channels, 9 samples
    y = torch.tensor([0, 1, 1, 0, 2, 2, 0, 1, 0])
    terms, valid = snnl_per_anchor(x, y)
    for c in range(4):
        single, _ = snnl_per_anchor(x[c], y)
        assert torch.allclose(terms[c][valid], single[valid], atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="distance"):
        SoftNearestNeighborLoss(distance="l1")
    with pytest.raises(ValueError, match="temperature"):
        compute_snnl(torch.randn(3, 2), torch.tensor([0, 0, 1]), temperature=0)
    with pytest.raises(ValueError, match="NaN"):
        compute_snnl(torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="labels"):
        compute_snnl(torch.randn(3, 2), torch.tensor([0, 0]))
