# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi losses against hand computations: FIS weights (1-D Wasserstein), distillation KL, routing, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from monai_fair.methods.fairdi import (
    FairDistillationLoss,
    FairDistillationSegLoss,
    FairIdentityScalingLoss,
    compute_fis_weights,
    route_teacher_logits,
    wasserstein_1d_to_groups,
)


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _fis_reference(losses, group, c, t_i=1.0, t_g=1.0, normalize=True):
    """Loop-based FIS weights straight from the formula (scipy's 1-D Wasserstein)."""
    losses, group = np.asarray(losses, float), np.asarray(group)
    present = sorted(set(group.tolist()))
    s_i = _softmax(losses / t_i)
    dist = np.array([wasserstein_distance(losses, losses[group == g]) for g in present])
    s_g = dict(zip(present, _softmax(dist / t_g)))
    if normalize:
        s_i = s_i * len(losses)
        s_g = {g: v * len(present) for g, v in s_g.items()}
    return np.array([(1 - c) * s_i[i] + c * s_g[group[i]] for i in range(len(losses))])


def test_wasserstein_matches_scipy():
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, size=23)
    group = rng.integers(0, 3, size=23)
    got = wasserstein_1d_to_groups(torch.tensor(values), torch.tensor(group), num_groups=4).numpy()
    for k in range(3):
        assert got[k] == pytest.approx(wasserstein_distance(values, values[group == k]), rel=1e-9, abs=1e-12)
    assert np.isnan(got[3])  # absent group


@pytest.mark.parametrize("c,t_i,t_g,normalize", [(0.5, 1.0, 1.0, True), (0.2, 0.5, 2.0, False), (1.0, 1.0, 0.1, True)])
def test_fis_weights_and_loss_match_formula(c, t_i, t_g, normalize):
    torch.manual_seed(0)
    pred = torch.randn(12, 3, dtype=torch.float64)
    target = torch.randint(0, 3, (12,))
    group = torch.tensor([0, 1, 1, 0, 2, 2, 1, 0, 1, 1, 0, 2])
    ce = -_log_softmax(pred.numpy(), 1)[np.arange(12), target.numpy()]
    w_ref = _fis_reference(ce, group.numpy(), c, t_i, t_g, normalize)
    w = compute_fis_weights(torch.tensor(ce), group, 3, c, t_i, t_g, normalize).numpy()
    np.testing.assert_allclose(w, w_ref, rtol=1e-6)
    loss = FairIdentityScalingLoss(c=c, individual_temperature=t_i, group_temperature=t_g, normalize=normalize)
    assert float(loss(pred, target, group)) == pytest.approx(float(np.mean(w_ref * ce)), rel=1e-5)


def test_fis_absent_and_single_sample_groups():
    losses = torch.tensor([0.1, 0.5, 2.0, 0.3, 0.9])
    group = torch.tensor([0, 0, 3, 0, 0])  # groups 1, 2 absent; group 3 has one sample
    w = compute_fis_weights(losses, group, num_groups=4, c=1.0)
    ref = _fis_reference(losses.numpy(), group.numpy(), 1.0)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-6)
    assert torch.isfinite(w).all()
    # absent groups take no weight: group weights of the two present groups sum to 2 (normalised)
    assert float(w[0] + w[2]) == pytest.approx(2.0, rel=1e-6)
    # a batch with one group only: uniform group weight 1 (c=1 -> plain mean)
    single = compute_fis_weights(losses, torch.zeros(5, dtype=torch.long), num_groups=2, c=1.0)
    np.testing.assert_allclose(single.numpy(), np.ones(5), rtol=1e-6)


def test_fis_errors_name_the_problem():
    with pytest.raises(ValueError, match="c must be in"):
        FairIdentityScalingLoss(c=1.5)
    with pytest.raises(ValueError, match="unknown group id 5"):
        FairIdentityScalingLoss(num_groups=2)(torch.randn(2, 2), torch.tensor([0, 1]), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="3 entries"):
        FairIdentityScalingLoss()(torch.randn(2, 2), torch.tensor([0, 1]), torch.tensor([0, 1, 1]))


@pytest.mark.parametrize("supervised", ["ce", "fis"])
def test_distillation_loss_matches_hand_computation(supervised):
    torch.manual_seed(1)
    b, c, k, tau, lam = 6, 3, 2, 1.5, 0.7
    s = torch.randn(b, c, dtype=torch.float64)
    all_t = torch.randn(k, b, c, dtype=torch.float64)
    y = torch.randint(0, c, (b,))
    g = torch.tensor([0, 1, 1, 0, 1, 0])
    sn, tn = s.numpy(), all_t.numpy()[g.numpy(), np.arange(b)]  # own-group teacher, by hand
    log_p_s, log_p_t = _log_softmax(sn / tau, 1), _log_softmax(tn / tau, 1)
    kl = (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(1).mean() * tau**2
    ce = -_log_softmax(sn, 1)[np.arange(b), y.numpy()]
    sup = ce.mean() if supervised == "ce" else np.mean(_fis_reference(ce, g.numpy(), 0.5) * ce)
    expected = lam * kl + (1 - lam) * sup
    loss = FairDistillationLoss(temperature=tau, lambda_kd=lam, supervised=supervised)
    assert float(loss(s, y, g, all_t)) == pytest.approx(expected, rel=1e-6)
    # already-routed teacher logits give the same value
    assert float(loss(s, y, g, torch.tensor(tn))) == pytest.approx(expected, rel=1e-6)
    # no tau^2 factor
    no_t2 = FairDistillationLoss(temperature=tau, lambda_kd=1.0, scale_by_t2=False)
    assert float(no_t2(s, y, g, all_t)) == pytest.approx(kl / tau**2, rel=1e-6)


def test_routing_uses_own_group_teacher():
    b = 5
    teacher = torch.stack([torch.full((b, 2), float(k)) for k in range(3)])  # teacher k outputs k everywhere
    g = torch.tensor([2, 0, 1, 2, 0])
    routed = route_teacher_logits(teacher, g, student_ndim=2)
    assert routed[:, 0].tolist() == [2.0, 0.0, 1.0, 2.0, 0.0]
    # the loss is zero iff every sample's student equals its own group's teacher distribution
    lam1 = FairDistillationLoss(lambda_kd=1.0)
    teacher = torch.randn(3, b, 2)
    student = teacher[g, torch.arange(b)].clone()
    assert float(lam1(student, torch.zeros(b, dtype=torch.long), g, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(lam1(student, torch.zeros(b, dtype=torch.long), (g + 1) % 3, teacher)) > 1e-3
    with pytest.raises(ValueError, match="unknown group id 3"):
        route_teacher_logits(teacher, torch.tensor([0, 1, 3, 0, 0]), 2)


def test_distillation_single_sample_group_and_absent_group():
    torch.manual_seed(2)
    s = torch.randn(4, 2, requires_grad=True)
    t = torch.randn(3, 4, 2)
    g = torch.tensor([0, 0, 0, 2])  # group 1 absent, group 2 has one sample
    loss = FairDistillationLoss()(s, torch.tensor([0, 1, 1, 0]), g, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 4, 6, 5)])
@pytest.mark.parametrize("supervised", ["dice_ce", "fis"])
def test_segmentation_form_2d_3d(shape, supervised):
    torch.manual_seed(3)
    s = torch.randn(*shape, requires_grad=True)
    t = torch.randn(*shape)
    y = torch.randint(0, shape[1], (shape[0], 1) + shape[2:])
    g = torch.tensor([1, 0])
    loss = FairDistillationSegLoss(temperature=2.0, lambda_kd=0.5, supervised=supervised)
    out = loss(s, y, g, t)
    out.backward()
    assert out.shape == () and s.grad.shape == s.shape
    # per-voxel KL term equals the hand value
    kd_only = FairDistillationSegLoss(temperature=2.0, lambda_kd=1.0)(s.detach().double(), y, g, t.double())
    ls, lt = _log_softmax(s.detach().numpy() / 2.0, 1), _log_softmax(t.numpy() / 2.0, 1)
    assert float(kd_only) == pytest.approx(float((np.exp(lt) * (lt - ls)).sum(1).mean() * 4.0), rel=1e-5)
    # own-group routing over K teachers for maps too
    all_t = torch.stack([torch.zeros_like(t), t])
    own = FairDistillationSegLoss(lambda_kd=1.0)(t, y, torch.tensor([1, 1]), all_t)
    assert float(own) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="segmentation logits"):
        loss(torch.randn(2, 3), torch.zeros(2), g, torch.randn(2, 3))


def test_distillation_under_autocast_is_fp32():
    s = torch.randn(4, 2, dtype=torch.bfloat16, requires_grad=True)
    t = torch.randn(4, 2, dtype=torch.bfloat16) * 30
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = FairDistillationLoss(temperature=0.5)(s, torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 1, 0]), t)
    assert out.dtype == torch.float32 and torch.isfinite(out)
