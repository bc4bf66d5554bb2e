# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE's objectives: the perturber's minimum is an uninformative discriminator (not a reversed one); the
discriminator's loss is group-balanced and, with its own learning rate and k steps, it learns on 80/20 groups; FAAP's
two-part term is zero only at the uniform posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from torch import nn

from monai_fair.methods.apple import (
    AppleKeys,
    AppleTrainer,
    AttributeDiscriminator,
    DiscriminatorLoss,
    LatentPerturber,
    PerturbedSegmentor,
    PerturberLoss,
    compute_attribute_recoverability,
)
from monai_fair.methods.apple.losses import privacy_divergence

_NO_SEG = lambda p, y: p.sum() * 0  # noqa: E731  (isolates the privacy term)


def _fixed_linear_discriminator(w: float) -> nn.Linear:
    """Logits ``[0, w * f]`` of a 1-d latent ``f``: ``w > 0`` ranks the groups right, ``w < 0`` in reverse."""
    d = nn.Linear(1, 2)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[0.0], [w]]))
        d.bias.zero_()
    return d.requires_grad_(False)


@pytest.mark.parametrize("privacy", ["uniform_ce", "entropy"])
def test_perturber_minimum_is_uninformative_discriminator_not_reversed(privacy):
    loss = PerturberLoss(2, seg_loss=_NO_SEG, beta=1.0, gamma=0.0, privacy=privacy)
    group = torch.tensor([0, 0, 0, 1])
    latent = torch.tensor([[-2.0], [-1.5], [-1.0], [2.0]])  # group 1 high
    pred = label = torch.zeros(4, 1)

    def objective(disc, shift):  # L_G of the perturbed latent f + delta, discriminator fixed
        delta = shift.clone().requires_grad_(True)
        value = loss(pred, label, group, disc(latent + delta))[AppleKeys.PERTURBER_LOSS]
        value.backward()
        return value.item(), delta.grad

    # a fixed discriminator that ranks the groups in reverse (AUC 0 on these latents): NOT a minimum
    reverse = _fixed_linear_discriminator(-3.0)
    scores = torch.softmax(reverse(latent), 1)[:, 1]
    assert roc_auc_score(group.numpy(), scores.numpy()) == 0.0
    value, grad = objective(reverse, torch.zeros(4, 1))
    assert value > 0.5 and grad.abs().sum() > 0
    # the perturbation that makes the same discriminator uniform (f_p = 0) reaches the global minimum 0
    value0, grad0 = objective(reverse, -latent)
    assert value0 == pytest.approx(0.0, abs=1e-7) and torch.allclose(grad0, torch.zeros_like(grad0), atol=1e-7)
    # a uniform discriminator is at the minimum whatever the latent
    uniform = _fixed_linear_discriminator(0.0)
    value_u, grad_u = objective(uniform, torch.zeros(4, 1))
    assert value_u == pytest.approx(0.0, abs=1e-7) and torch.equal(grad_u, torch.zeros_like(grad_u))
    # contrast: the capped "-CE" objective (FAAP form) is already at its minimum -log 2 with the reversed one
    neg_ce = -F.cross_entropy(reverse(latent), group).clamp(max=math.log(2))
    assert neg_ce.item() == pytest.approx(-math.log(2))


def test_perturber_loss_against_hand_computation():
    loss = PerturberLoss(2, seg_loss=lambda p, y: (p - y).abs().mean(), seg_weight=2.0, beta=0.5, gamma=3.0)
    pred, label = torch.full((3, 1, 2, 2), 0.25), torch.zeros(3, 1, 2, 2)
    group = torch.tensor([0, 0, 1])
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    delta, f = torch.full((3, 4), 0.1), torch.full((3, 4), 2.0)
    out = loss(pred, label, group, logits, [delta], [f])
    p = torch.softmax(logits, 1).double()
    kl = (-p.log().mean(1) - math.log(2)).tolist()  # KL(uniform || p_i)
    privacy = ((kl[0] + kl[1]) / 2 + kl[2]) / 2  # group-balanced: mean over groups of per-group means
    expected = 2.0 * 0.25 + 0.5 * privacy + 3.0 * (0.01 / 4.0)
    assert out[AppleKeys.PERTURBER_LOSS].item() == pytest.approx(expected, rel=1e-6)
    assert out[AppleKeys.PRIVACY_LOSS].item() == pytest.approx(privacy, rel=1e-6)
    assert out[AppleKeys.PERTURBATION_PENALTY].item() == pytest.approx(0.01 / 4.0, rel=1e-6)
    ent = PerturberLoss(2, seg_loss=_NO_SEG, privacy="entropy").privacy_term(logits, group).item()
    h = (-(p * p.log()).sum(1)).tolist()
    assert ent == pytest.approx(((2 * math.log(2) - h[0] - h[1]) / 2 + math.log(2) - h[2]) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="Unsupported option"):
        PerturberLoss(2, privacy="neg_ce")


def test_beta_keeps_its_effect_when_the_discriminator_is_confident():
    """The uniform-CE term grows with the discriminator's confidence (no cap), so its gradient never vanishes."""
    loss = PerturberLoss(2, seg_loss=_NO_SEG, beta=1.0, gamma=0.0)
    group = torch.tensor([0, 1])
    grads = []
    for scale in (1.0, 10.0, 100.0):
        logits = (torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) * scale).requires_grad_(True)
        loss(torch.zeros(2), torch.zeros(2), group, logits)[AppleKeys.PERTURBER_LOSS].backward()
        grads.append(logits.grad.abs().sum().item())
    assert min(grads) > 0.4  # the capped -CE of the old objective has zero gradient at every one of these


def test_discriminator_loss_is_group_balanced():
    logits = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    group = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 0])
    counts = torch.bincount(group, minlength=3).float()
    # independent reference: PyTorch's class-weighted CE with weights 1 / n_k is the mean of the per-group means
    ref = F.cross_entropy(logits, group, weight=1.0 / counts)
    assert DiscriminatorLoss(3)(logits, group).item() == pytest.approx(ref.item(), rel=1e-6)
    assert DiscriminatorLoss(3, balanced=False)(logits, group).item() == pytest.approx(
        F.cross_entropy(logits, group).item(), rel=1e-6
    )
    # on 80/20 groups the majority-prior predictor is not a minimum of the balanced loss (it is log 2 >= chance)
    g = torch.tensor([0] * 8 + [1] * 2)
    prior = torch.log(torch.tensor([[0.8, 0.2]])).expand(10, 2)
    assert DiscriminatorLoss(2)(prior, g).item() > DiscriminatorLoss(2)(torch.zeros(10, 2), g).item()


def test_recoverability_matches_sklearn():
    gen = torch.Generator().manual_seed(1)
    group = torch.randint(0, 3, (40,), generator=gen)
    logits = torch.randn(40, 3, generator=gen) + F.one_hot(group, 3) * 0.8
    res = compute_attribute_recoverability(logits, group, 3, n_bootstrap=200)
    prob = torch.softmax(logits.double(), 1).numpy()
    assert res["auc"] == pytest.approx(roc_auc_score(group.numpy(), prob, multi_class="ovr"), abs=1e-9)
    assert res["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(group.numpy(), prob.argmax(1)))
    lo, hi = res["ci"]["auc"]
    assert lo <= res["auc"] <= hi
    g2 = group.clamp_max(1)
    res2 = compute_attribute_recoverability(logits[:, :2], g2, 2)
    p2 = torch.softmax(logits[:, :2].double(), 1).numpy()
    assert res2["auc"] == pytest.approx(roc_auc_score(g2.numpy(), p2[:, 1]), abs=1e-9)


def _imbalanced_batches(n=50, batch=10):
    """80/20 groups whose pooled latent is separable (the minority's images are brighter)."""
    gen = torch.Generator().manual_seed(0)
    group = torch.zeros(n, dtype=torch.long)
    group[: n // 5] = 1
    group = group[torch.randperm(n, generator=gen)]
    image = torch.rand(n, 1, 8, 8, generator=gen) + group.view(-1, 1, 1, 1).float()
    label = (torch.rand(n, 1, 8, 8, generator=gen) > 0.5).float()
    return [
        {"image": image[i : i + batch], "label": label[i : i + batch], "group": group[i : i + batch]}
        for i in range(0, n, batch)
    ]


def _discriminator_run(balanced: bool, lr: float, k: int) -> dict:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 2, 1))
    wrapped = PerturbedSegmentor(net, LatentPerturber(4), latent_module="0")
    disc = AttributeDiscriminator(4, 2, hidden_channels=(16,))
    trainer = AppleTrainer(
        device="cpu",
        max_epochs=4,
        train_data_loader=_imbalanced_batches(),
        network=wrapped,
        optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), 1e-3),
        loss_function=PerturberLoss(2, beta=0.0),  # the perturber does not fight: the discriminator's own ability
        discriminator=disc,
        discriminator_optimizer=torch.optim.Adam(disc.parameters(), lr),
        discriminator_loss_function=DiscriminatorLoss(2, balanced=balanced),
        n_discriminator_steps=k,
        decollate=False,
    )
    history = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: history.append(dict(e.state.metrics)))
    trainer.run()
    return history[-1]


def test_discriminator_learns_on_imbalanced_groups_instead_of_predicting_the_majority():
    learned = _discriminator_run(balanced=True, lr=1e-2, k=2)  # the bundle's schedule: balanced, own lr, k steps
    assert learned[AppleKeys.DISCRIMINATOR_BALANCED_ACCURACY] > 0.9
    assert learned[AppleKeys.DISCRIMINATOR_AUC] > 0.95
    # the old schedule (unweighted CE, lr 2e-4, one step) predicts the majority: raw accuracy would read 0.8,
    # the balanced accuracy says 0.5 (chance)
    blind = _discriminator_run(balanced=False, lr=2e-4, k=1)
    assert blind[AppleKeys.DISCRIMINATOR_BALANCED_ACCURACY] == pytest.approx(0.5)
    assert np.isfinite(blind[AppleKeys.DISCRIMINATOR_AUC])


def test_faap_two_part_term_is_zero_only_at_the_uniform_posterior():
    k = 2
    uniform = torch.zeros(3, k)
    group = torch.tensor([0, 1, 0])
    assert torch.allclose(privacy_divergence(uniform, "faap", group), torch.zeros(3), atol=1e-7)
    right = torch.tensor([[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]])  # confident and right
    reversed_ = -right  # confident and reversed: -CE rewards it, the capped form does not
    p_right = privacy_divergence(right, "faap", group, entropy_weight=0.25)
    p_rev = privacy_divergence(reversed_, "faap", group, entropy_weight=0.25)
    assert (p_right > 0).all() and (p_rev > 0).all() and (p_right > p_rev).all()
    h = -(torch.softmax(right, 1) * torch.log_softmax(right, 1)).sum(1)
    ce = torch.nn.functional.cross_entropy(right, group, reduction="none")
    expected = (math.log(k) - ce.clamp(max=math.log(k))) + 0.25 * (math.log(k) - h)
    assert torch.allclose(p_right, expected, atol=1e-6)
    assert torch.allclose(p_rev, 0.25 * (math.log(k) - h), atol=1e-6)  # only the entropy part is left
    with pytest.raises(ValueError, match="true groups"):
        privacy_divergence(right, "faap")
    loss = PerturberLoss(2, privacy="faap", faap_entropy_weight=0.5)
    assert loss.privacy_term(uniform, group).abs() < 1e-7
    with pytest.raises(ValueError, match="faap_entropy_weight"):
        PerturberLoss(2, privacy="faap", faap_entropy_weight=-1)
