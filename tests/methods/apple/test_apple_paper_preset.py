# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE's paper-shaped preset, one config id away: encoder-decoder perturber (residual, zero-initialised last
layer), three-block Linear-BatchNorm discriminator, FAAP's two-part fairness term; the consistency target; the
pretrained-weights key of the segmentation bundles."""

from __future__ import annotations

import math

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import UNet

from monai_fair.methods.apple import (
    AppleKeys,
    AppleTrainer,
    AttributeDiscriminator,
    EncoderDecoderPerturber,
    LatentPerturber,
    PerturbedSegmentor,
    PerturberLoss,
    make_perturbers,
    select_preset,
)
from monai_fair.methods.apple.losses import privacy_divergence
from tests.conftest import BUNDLES_DIR
from tests.methods.apple.test_apple_training import _data

CONFIGS = BUNDLES_DIR / "apple_segmentation" / "configs"


@pytest.mark.parametrize("dims, shape", [(2, (3, 128, 8, 8)), (3, (2, 64, 4, 4, 4)), (2, (2, 32, 1, 1))])
def test_encoder_decoder_perturber_shape_identity_and_gradients(dims, shape):
    g = EncoderDecoderPerturber(shape[1], spatial_dims=dims)
    assert [b[0].out_channels for b in g.encoder] == [32, 64, 128] and len(g.bottleneck) == 4
    assert [b[0].out_channels for b in g.decoder] + [g.out.out_channels] == [64, 32, shape[1]]  # 3 decoder layers
    f = torch.randn(*shape)
    assert torch.equal(g(f), f)  # zero-initialised output layer: training starts at f_p = f_o
    g(f).pow(2).sum().backward()
    assert g.out.weight.grad is not None and g.out.weight.grad.abs().sum() > 0  # the residual path trains it
    torch.nn.init.normal_(g.out.weight, std=0.1)
    assert g.perturbation(f).shape == f.shape and not torch.equal(g(f), f)
    with pytest.raises(ValueError, match="check latent_module"):
        g(torch.randn(2, shape[1] + 1, *shape[2:]))


def test_encoder_decoder_perturber_tokens_and_bad_arguments():
    g = EncoderDecoderPerturber(48, latent_type="token")
    f = torch.randn(2, 10, 48)
    assert torch.equal(g(f), f)
    with pytest.raises(ValueError, match="encoder_strides"):
        EncoderDecoderPerturber(16, encoder_strides=(1, 2))
    with pytest.raises(ValueError, match="must be >= 1"):
        EncoderDecoderPerturber(16, encoder_channels=())
    assert isinstance(make_perturbers([16], arch="encoder_decoder")[0], EncoderDecoderPerturber)
    assert isinstance(make_perturbers([16], arch="compact")[0], LatentPerturber)
    with pytest.raises(ValueError, match="encoder_decoder"):
        make_perturbers([16], arch="unet")


def test_linear_batchnorm_discriminator_and_its_running_statistics():
    d = AttributeDiscriminator(32, 2, hidden_channels=(128, 64), hidden_norm=True)
    kinds = [type(m).__name__ for m in d.mlp]
    assert kinds.count("Linear") == 3 and kinds.count("_GradOnlyBatchNorm1d") == 2 and d.mlp[-1].out_features == 2
    bn = d.mlp[1]
    d.train()
    x = torch.randn(8, 32, 4, 4)
    with torch.no_grad():  # monitoring passes do not move the running statistics
        d(x)
    assert torch.equal(bn.running_mean, torch.zeros(128))
    d(x).sum().backward()
    assert not torch.equal(bn.running_mean, torch.zeros(128)) and bn.weight.grad is not None
    assert d(torch.randn(1, 32, 4, 4)).shape == (1, 2)  # one training sample: running statistics, no error


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


@pytest.mark.parametrize("preset", ["paper", "compact"])
def test_one_config_id_selects_the_preset(tmp_path, preset):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "num_groups": 2, "preset": preset})
    perturber = parser.get_parsed_content("apple#perturbers")[0]
    disc = parser.get_parsed_content("apple#discriminator")
    loss = parser.get_parsed_content("apple#loss")
    paper = preset == "paper"
    assert isinstance(perturber, EncoderDecoderPerturber if paper else LatentPerturber)
    assert loss.privacy == ("faap" if paper else "uniform_ce")
    assert sum(type(m).__name__ == "Linear" for m in disc.mlp) == (3 if paper else 2)
    assert parser.get_parsed_content("synthetic")["scenario"] == "label_noise"  # a gap group information explains
    inference = ConfigParser()
    inference.read_config(str(CONFIGS / "inference.json"))
    inference.update({"bundle_root": str(tmp_path), "preset": preset})
    net = inference.get_parsed_content("network_def")
    assert type(net.perturbers[0]) is type(perturber)  # the checkpoint of a preset loads into its inference net
    assert set(net.perturbers[0].state_dict()) == set(perturber.state_dict())
    assert not list(tmp_path.iterdir())  # resolving the ids wrote nothing
    with pytest.raises(ValueError):
        select_preset("papers", parser.get_parsed_content("presets"))


@pytest.mark.parametrize(
    "bundle, net_id",
    [("baseline_segmentation", "network"), ("fairdi_segmentation", "network"), ("apple_segmentation", "base#network")],
)
def test_segmentation_bundles_load_user_pretrained_weights(tmp_path, bundle, net_id):
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "device": "$torch.device('cpu')"})
    fresh = parser.get_parsed_content(net_id)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in fresh.state_dict().items()}
    path = tmp_path / "pretrained.pt"
    torch.save({"model": state}, path)  # a MONAI CheckpointSaver layout
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "device": "$torch.device('cpu')", "pretrained#path": str(path)})
    loaded = parser.get_parsed_content(net_id)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "pretrained#path": str(tmp_path / "missing.pt")})
    with pytest.raises(RuntimeError) as exc:
        parser.get_parsed_content(net_id)
    assert "pretrained#path" in str(exc.value.__cause__)
