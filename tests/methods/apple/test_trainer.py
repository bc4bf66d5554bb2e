# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE training: frozen weights bit-identical, alternating updates, output keys, one-group batch, NaN guard, the
consistency target (the deployed model's own prediction)."""

from __future__ import annotations

import warnings

import pytest
import torch
from monai.networks.nets import UNet

from monai_fair.methods.apple import (
    APPLE_LOSS_TERMS,
    AppleIterationEvents,
    AppleKeys,
    AppleTrainer,
    AttributeDiscriminator,
    EncoderDecoderPerturber,
    LatentPerturber,
    PerturbedSegmentor,
    PerturberLoss,
    SamLikeSegmentor,
    apple_loss_terms,
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
        loss_function=trainer_kwargs.pop("loss", PerturberLoss(2)),
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
    fired = []
    for event in AppleIterationEvents:
        trainer.add_event_handler(event, lambda e, ev=event: fired.append(ev))
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
    for key in ("loss", "group", AppleKeys.DISCRIMINATOR_LOGITS, *APPLE_LOSS_TERMS):
        assert key in out, key
    assert torch.equal(out["group"], torch.tensor([0, 1, 0, 1]))
    assert set(apple_loss_terms(out)) == {str(k) for k in APPLE_LOSS_TERMS}
    assert apple_loss_terms([out])[AppleKeys.PERTURBER_LOSS] == pytest.approx(float(out["loss"]))
    # per iteration: forward, k=2 discriminator steps, one perturber step, in this order
    one = fired[: len(fired) // trainer.state.iteration]
    E = AppleIterationEvents
    assert one == [
        E.PERTURBER_FORWARD_COMPLETED,
        *[E.DISCRIMINATOR_LOSS_COMPLETED, E.DISCRIMINATOR_BACKWARD_COMPLETED] * 2,
        E.DISCRIMINATOR_MODEL_COMPLETED,
        E.PERTURBER_LOSS_COMPLETED,
        E.PERTURBER_BACKWARD_COMPLETED,
        E.PERTURBER_MODEL_COMPLETED,
    ]
    # epoch metrics of the discriminator: AUC and balanced accuracy, never raw accuracy
    metrics = trainer.state.metrics
    assert {AppleKeys.DISCRIMINATOR_AUC, AppleKeys.DISCRIMINATOR_BALANCED_ACCURACY} <= set(metrics)
    assert not any("acc" in k and "balanced" not in k for k in metrics)
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
            loss_function=PerturberLoss(2),
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
    assert float(trainer.state.output[AppleKeys.PRIVACY_LOSS]) == 0.0
    # error
    _, _, _, trainer = _setup(data=data, max_epochs=1, one_group_batch="error")
    with pytest.raises(ValueError, match="only group 1"):
        trainer.run()
    with pytest.raises(ValueError, match=r"integer group ids in 0\.\.1"):
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


def test_amp_training_keeps_frozen_weights():
    """AMP path (``torch.autocast`` on the engine's device; bfloat16 on CPU): runs, finite, weights unchanged."""
    net, wrapped, _, trainer = _setup(max_epochs=1, amp=True)
    base0 = _snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler warns that CUDA is not available
        trainer.run()
    assert torch.isfinite(trainer.state.output["loss"])
    assert all(torch.equal(base0[k], v) for k, v in net.state_dict().items())


def test_consistency_target_uses_the_deployed_prediction_and_keeps_the_labels():
    torch.manual_seed(0)
    net = UNet(2, 1, 2, channels=(8, 16, 32), strides=(2, 2), norm="batch")
    wrapped = PerturbedSegmentor(net, EncoderDecoderPerturber(32))
    disc = AttributeDiscriminator(32, 2, hidden_channels=(16, 8), hidden_norm=True)
    seen = []

    def seg_loss(pred, target):
        seen.append(target.clone())
        return torch.nn.functional.cross_entropy(pred, target[:, 0].long())

    data = _data(n_batches=1)
    trainer = AppleTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=data,
        network=wrapped,
        optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), 1e-2),
        loss_function=PerturberLoss(2, seg_loss=seg_loss, beta=0.0, gamma=0.0),
        discriminator=disc,
        discriminator_optimizer=torch.optim.Adam(disc.parameters(), 1e-2),
        n_discriminator_steps=1,
        seg_target="deployed",
        decollate=False,
    )
    with torch.no_grad():
        wrapped.set_perturbation_enabled(False)
        deployed = net(data[0]["image"]).argmax(1, keepdim=True)
        wrapped.set_perturbation_enabled(True)
    trainer.run()
    assert torch.equal(seen[0], deployed) and not torch.equal(seen[0].float(), data[0]["label"])
    assert torch.equal(trainer.state.output["label"], data[0]["label"])  # metrics still see the ground truth
    assert AppleKeys.SEGMENTATION_LOSS in trainer.state.output
    with pytest.raises(ValueError, match="deployed"):
        AppleTrainer(
            device=torch.device("cpu"),
            max_epochs=1,
            train_data_loader=data,
            network=wrapped,
            optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), 1e-2),
            loss_function=PerturberLoss(2),
            discriminator=disc,
            discriminator_optimizer=torch.optim.Adam(disc.parameters(), 1e-2),
            seg_target="prediction",
        )
