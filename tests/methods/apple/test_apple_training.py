# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE training: frozen weights bit-identical, alternating updates, loss values, one-group batch, NaN guard."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from monai.networks.nets import UNet

from monai_fair.methods.apple import (
    AdversarialPrivacyLoss,
    AppleTrainer,
    AttributeDiscriminator,
    LatentPerturber,
    PerturbedSegmentor,
    SamLikeSegmentor,
    check_groups,
)


def _data(n_batches=3, groups=((0, 1, 0, 1),), size=32, nan=False):
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n_batches):
        grp = torch.tensor(groups[i % len(groups)])
        img = torch.rand(len(grp), 1, size, size, generator=g)
        if nan:
            img[0, 0, 0, 0] = float("nan")
        lab = (torch.rand(len(grp), 1, size, size, generator=g) > 0.5).float()
        out.append({"image": img, "label": lab, "group": grp})
    return out


def _setup(net_kind="unet", **trainer_kwargs):
    torch.manual_seed(0)
    if net_kind == "unet":
        net = UNet(2, 1, 2, channels=(8, 16, 32), strides=(2, 2), norm="batch", dropout=0.2)
        ch = 32
    else:
        net = SamLikeSegmentor(img_size=32, embed_dim=32, prompt_dim=16, depth=1, num_heads=2)
        ch = 16
    wrapped = PerturbedSegmentor(net, LatentPerturber(ch))
    disc = AttributeDiscriminator(ch, 2)
    data = trainer_kwargs.pop("data", None) or _data()
    trainer = AppleTrainer(
        device=torch.device("cpu"),
        max_epochs=trainer_kwargs.pop("max_epochs", 2),
        train_data_loader=data,
        network=wrapped,
        optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), 1e-2),
        loss_function=trainer_kwargs.pop("loss", AdversarialPrivacyLoss(2)),
        discriminator=disc,
        discriminator_optimizer=torch.optim.Adam(disc.parameters(), 1e-2),
        decollate=False,
        **trainer_kwargs,
    )
    return net, wrapped, disc, trainer


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kind", ["unet", "sam_like"])
def test_frozen_weights_bit_identical_and_perturber_trained(kind):
    net, wrapped, disc, trainer = _setup(kind, n_discriminator_steps=2)
    base0, pert0, disc0 = _snapshot(net), _snapshot(wrapped.perturbers), _snapshot(disc)
    trainer.run()
    base1 = net.state_dict()
    assert base0.keys() == base1.keys()
    # parameters AND buffers (batch-norm running statistics) are bit-identical
    assert all(torch.equal(base0[k], base1[k]) for k in base0), [
        k for k in base0 if not torch.equal(base0[k], base1[k])
    ]
    assert any(not torch.equal(pert0[k], v) for k, v in wrapped.perturbers.state_dict().items())
    assert any(not torch.equal(disc0[k], v) for k, v in disc.state_dict().items())
    out = trainer.state.output
    for key in ("loss", "d_loss", "d_acc", "seg", "adv_ce", "confusion", "penalty", "group"):
        assert key in out
    assert torch.equal(out["group"], torch.tensor([0, 1, 0, 1]))
    assert not net.training


def test_optimizer_with_frozen_weights_rejected():
    net = UNet(2, 1, 2, channels=(8, 16), strides=(2,))
    w = PerturbedSegmentor(net, LatentPerturber(16))
    disc = AttributeDiscriminator(16, 2)
    with pytest.raises(ValueError, match="frozen deployed network"):
        AppleTrainer(
            device="cpu",
            max_epochs=1,
            train_data_loader=_data(1),
            network=w,
            optimizer=torch.optim.Adam(w.parameters(), 1e-3),
            loss_function=AdversarialPrivacyLoss(2),
            discriminator=disc,
            discriminator_optimizer=torch.optim.Adam(disc.parameters()),
        )


def test_one_group_batch_policies():
    data = _data(2, groups=((1, 1, 1, 1),))
    # warn: trains, with a warning naming the group
    _, _, disc, trainer = _setup(data=data, max_epochs=1, one_group_batch="warn")
    d0 = _snapshot(disc)
    with pytest.warns(UserWarning, match="only group 1"):
        trainer.run()
    assert any(not torch.equal(d0[k], v) for k, v in disc.state_dict().items())
    # skip: the discriminator is not updated, the perturber still gets the segmentation/penalty terms
    _, _, disc, trainer = _setup(data=data, max_epochs=1, one_group_batch="skip")
    d0 = _snapshot(disc)
    with pytest.warns(UserWarning, match="skipped"):
        trainer.run()
    assert all(torch.equal(d0[k], v) for k, v in disc.state_dict().items())
    assert float(trainer.state.output["adv_ce"]) == 0.0
    # error
    _, _, _, trainer = _setup(data=data, max_epochs=1, one_group_batch="error")
    with pytest.raises(ValueError, match="only group 1"):
        trainer.run()
    with pytest.raises(ValueError, match=r"0\.\.1"):
        check_groups(torch.tensor([0, 2]), 2)


def test_nan_guard():
    data = _data(2, nan=True)
    _, _, _, trainer = _setup(data=data, max_epochs=1)
    with pytest.raises(FloatingPointError, match="input image"):
        trainer.run()
    _, wrapped, _, trainer = _setup(data=data, max_epochs=1, nan_policy="skip")
    p0 = _snapshot(wrapped.perturbers)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        trainer.run()
    assert any("non-finite" in str(w.message) for w in rec)
    assert all(torch.equal(p0[k], v) for k, v in wrapped.perturbers.state_dict().items())


def test_loss_terms_against_hand_computation():
    loss = AdversarialPrivacyLoss(
        2,
        seg_loss=lambda p, y: (p - y).abs().mean(),
        beta=0.5,
        alpha=0.3,
        gamma=2.0,
        confusion="entropy",
        norm_penalty="relative",
    )
    pred, label = torch.full((2, 1, 2, 2), 0.25), torch.zeros(2, 1, 2, 2)
    group = torch.tensor([0, 1])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    delta, f = torch.full((2, 3), 0.1), torch.full((2, 3), 2.0)
    out = loss(pred, label, logits, group, [delta], [f])
    p = torch.softmax(logits.detach(), 1)
    ce = -(math.log(p[0, 0]) + math.log(p[1, 1])) / 2
    ent = -(p * p.log()).sum(1).mean()
    expected = 0.25 - 0.5 * ce + 0.3 * (math.log(2) - ent) + 2.0 * (0.01 / 4.0)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["adv_ce"].item() == pytest.approx(ce, rel=1e-5)
    # uniform posterior: zero confusion for both forms
    uni = torch.zeros(3, 2)
    assert loss.confusion_term(uni).item() == pytest.approx(0.0, abs=1e-7)
    loss.confusion = "uniform_ce"
    assert loss.confusion_term(uni).item() == pytest.approx(0.0, abs=1e-7)
    # the adversarial CE is capped at log K: beyond it the perturber gets no gradient from that term
    wrong = torch.tensor([[-9.0, 9.0], [9.0, -9.0]], requires_grad=True)
    capped = AdversarialPrivacyLoss(2, seg_loss=lambda p, y: p.sum() * 0, beta=1.0, alpha=0.0, gamma=0.0)
    out = capped(pred, label, wrong, group)
    assert out["loss"].item() == pytest.approx(-math.log(2), rel=1e-6)
    out["loss"].backward()
    assert torch.equal(wrong.grad, torch.zeros_like(wrong))


def test_amp_training_keeps_frozen_weights():
    """AMP path (``torch.autocast`` on the engine's device; bfloat16 on CPU): runs, finite, weights unchanged."""
    net, wrapped, _, trainer = _setup(max_epochs=1, amp=True)
    base0 = _snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler warns that CUDA is not available
        trainer.run()
    assert torch.isfinite(trainer.state.output["loss"])
    assert all(torch.equal(base0[k], v) for k, v in net.state_dict().items())
