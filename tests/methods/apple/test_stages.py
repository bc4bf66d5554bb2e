# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE on the user's own deployed model: the bundle takes another bundle's ``network_def`` and ``models/model.pt``
(``deployed#bundle``), finds the latent by its documented rule, trains only the perturber and never changes the
deployed weights; the headline of its evaluation is the paired comparison with that deployed model."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import SegResNet, SwinUNETR, UNet

from monai_fair.methods.apple import (
    AppleTrainer,
    AttributeDiscriminator,
    EncoderDecoderPerturber,
    PerturbedSegmentor,
    PerturberLoss,
    base_stage_needed,
    deployed_checkpoint,
    deployed_network,
    latent_sites,
    make_perturbers,
    require_deployed_segmentor,
)
from tests.conftest import BUNDLES_DIR, run_bundle_cli
from tests.methods.apple.test_bundle import TINY, _runs
from tests.methods.apple.test_trainer import _data


def test_deployed_network_reads_another_bundles_network_def(tmp_path):
    default = torch.nn.Identity()
    assert deployed_network(None, default) is default and deployed_network({"bundle": None}, default) is default
    spec = {"bundle": str(BUNDLES_DIR / "baseline_segmentation"), "overrides": {"spatial_dims": 2}}
    net = deployed_network(spec, default)
    assert isinstance(net, UNet) and net.dimensions == 2
    names, channels = latent_sites(net, None, False, (32, 32), 1)
    assert names == ["model.1.submodule.1.submodule.1.submodule"] and channels == [128]
    ckpt = deployed_checkpoint(spec, tmp_path)
    assert ckpt == str(BUNDLES_DIR / "baseline_segmentation" / "models" / "model.pt")
    assert deployed_checkpoint(None, tmp_path) == str(tmp_path / "base_model.pt")
    assert not base_stage_needed(tmp_path, deployed=spec)  # another bundle's model is never trained here
    with pytest.raises(RuntimeError, match="do not exist"):
        require_deployed_segmentor(tmp_path, deployed={**spec, "checkpoint": "models/none.pt"})
    with pytest.raises(ValueError, match="unknown keys"):
        deployed_network({"bundel": "x"}, default)
    with pytest.raises(FileNotFoundError, match="deployed#config_file"):
        deployed_network({"bundle": str(tmp_path)}, default)
    with pytest.raises(ValueError, match="deployed#net_id"):
        deployed_network({**spec, "net_id": "no_such_id"}, default)


@pytest.mark.parametrize(
    "net, patch, site, channels",
    [
        (SegResNet(spatial_dims=2, init_filters=8, in_channels=1, out_channels=2), (32, 32), "down_layers.3", 64),
        (SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2), (64, 64), "encoder10", 192),
    ],
)
def test_latent_rule_on_model_zoo_networks_and_identity_at_start(net, patch, site, channels):
    """The documented rule finds SegResNet's and SwinUNETR's bottleneck; the paper perturber starts at identity."""
    names, found = latent_sites(net, None, False, patch, 1)
    assert names == [site] and found == [channels]
    wrapped = PerturbedSegmentor(net, [EncoderDecoderPerturber(c) for c in found], names)
    x = torch.rand(2, 1, *patch)
    with torch.no_grad():
        out = wrapped(x)
        wrapped.set_perturbation_enabled(False)
        assert torch.equal(out, wrapped(x))
    assert not any(p.requires_grad for p in net.parameters())


def test_apple_trains_only_the_perturber_of_a_segresnet():
    """A model-zoo style network found by the rule: one short APPLE run leaves its weights bit-identical."""
    torch.manual_seed(0)
    net = SegResNet(spatial_dims=2, init_filters=8, in_channels=1, out_channels=2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    names, channels = latent_sites(net, None, False, (32, 32), 1)
    wrapped = PerturbedSegmentor(net, make_perturbers(channels, arch="encoder_decoder"), names)
    disc = AttributeDiscriminator(channels, 2, hidden_channels=(16, 8), hidden_norm=True)
    trainer = AppleTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=_data(n_batches=2),
        network=wrapped,
        optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), 1e-2),
        loss_function=PerturberLoss(2, privacy="faap"),
        discriminator=disc,
        discriminator_optimizer=torch.optim.Adam(disc.parameters(), 1e-2),
        n_discriminator_steps=1,
        decollate=False,
    )
    trainer.run()
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert wrapped.perturbers[0].out.weight.abs().sum() > 0  # the zero-initialised output layer has trained


@pytest.mark.slow
def test_apple_on_a_trained_baseline_segmentation_model(bundle_copy, tmp_path):
    """Train ``baseline_segmentation``, then point APPLE at it: its weights are unchanged bit for bit (file and
    tensors), APPLE trains only its perturber and writes the paired headline against that model."""
    base_root = bundle_copy("baseline_segmentation")
    data = tmp_path / "data"
    synthetic = {"n_samples": 40, "image_size": 32, "seed": 0, "scenario": "label_noise"}
    run_bundle_cli(
        base_root,
        ["train.json"],
        {"dataset_dir": str(data), "synthetic": synthetic, "epochs": 1, "patch_size": [32, 32], "num_samples": 1},
    )
    ckpt = base_root / "models" / "model.pt"
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    deployed_state = torch.load(ckpt, weights_only=True)

    root = bundle_copy("apple_segmentation")
    overrides = dict(TINY, datalist=str(data / "datalist.json"), dataset_dir=str(tmp_path / "unused"))
    overrides["deployed"] = {"bundle": str(base_root)}
    out = run_bundle_cli(
        root, ["train.json", "evaluate.json"], dict(overrides, run=_runs("train.json", "evaluate.json"))
    )
    assert "using the deployed segmentor " + str(ckpt) in out
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest  # the user's file is untouched
    models = root / "models"
    assert not (models / "base_model.pt").exists()  # nothing of the deployed model was trained here
    full = torch.load(models / "model.pt", weights_only=True)
    for k, v in deployed_state.items():  # the deployed weights inside the APPLE model are the user's, bit for bit
        assert torch.equal(full["network." + k], v), k
    assert {k for k in full if k.startswith("network.")} == {"network." + k for k in deployed_state}
    assert any(k.startswith("perturbers.0.bottleneck.") for k in full)  # the paper preset's encoder-decoder

    comparison = json.loads((root / "eval" / "apple_comparison.json").read_text())
    assert list(comparison)[0] == "headline"
    for fig in ("worst_group_dice", "dice_gap", "es_dice"):
        row = comparison["headline"][fig]
        assert row["ci"] is not None and len(row["ci"]) == 2 and row["ci_method"], (fig, row)
        assert row["difference"] == pytest.approx(row["other"] - row["base"], abs=1e-9)
    md = (root / "eval" / "apple_comparison.md").read_text()
    assert md.index("Headline: APPLE paired with its deployed model") < md.index("probe/linear/auc")

    # inference through inference.json with the same deployed bundle
    inference = ConfigParser()
    inference.read_config(str(root / "configs" / "inference.json"))
    inference.update({"bundle_root": str(root), "deployed": {"bundle": str(base_root)}, "image_size": 32})
    net = inference.get_parsed_content("network_def")
    net.load_state_dict(full)
    for k, v in deployed_state.items():
        assert torch.equal(net.network.state_dict()[k], v), k
