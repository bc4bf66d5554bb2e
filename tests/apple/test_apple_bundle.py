# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the APPLE bundle trains base + perturber, evaluates before/after, infers, passes verify_net_in_out."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_bundle_cli, verify_net_in_out

TINY = {"synthetic": {"n_samples": 60, "image_size": 32, "seed": 1}, "image_size": 32, "base_epochs": 1,
        "apple_epochs": 1, "batch_size": 16, "min_group_size": 1}


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["unet", "sam_like"])
def test_apple_bundle_train_evaluate_infer(bundle_copy, tmp_path, model_id):
    root = bundle_copy("apple_segmentation")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), model_id=model_id)
    run_bundle_cli(root, ["train.json"], overrides)
    models = root / "models"
    for name in ("base_model.pt", "model.pt", "perturber.pt"):
        assert (models / name).exists(), name
    base = torch.load(models / "base_model.pt", weights_only=True)
    full = torch.load(models / "model.pt", weights_only=True)
    # the deployed weights inside the APPLE checkpoint are exactly the base checkpoint's
    for k, v in base.items():
        assert torch.equal(full["network." + k], v), k
    assert any(k.startswith("perturbers.0.") for k in full)

    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    for stage in ("before", "after"):
        report = json.loads((root / "eval" / stage / "report.json").read_text())
        assert set(report["groups"]) == {"F", "M"}
        assert {"es_dice", "dice_gap", "ser"} <= set(report["fairness"])
    comparison = json.loads((root / "eval" / "apple_comparison.json").read_text())
    assert comparison["es_dice"]["change"] == pytest.approx(comparison["es_dice"]["after"] - comparison["es_dice"]["before"])

    if model_id != "unet":  # the steps below do not depend on the network family; run them once
        return
    # a second training run reuses the deployed segmentor instead of retraining it
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert "using the deployed segmentor" in out
    assert torch.equal(torch.load(models / "base_model.pt", weights_only=True)[next(iter(base))], next(iter(base.values())))

    run_bundle_cli(root, ["inference.json"], {"dataset_dir": str(tmp_path / "data"), "synthetic": TINY["synthetic"],
                                              "image_size": 32, "model_id": model_id})
    assert len(list((root / "eval" / "inference").glob("*_seg.nii.gz"))) > 0


@pytest.mark.parametrize("model_id", ["unet", "sam_like"])
def test_apple_bundle_verify_net_in_out(bundle_copy, model_id):
    root = bundle_copy("apple_segmentation")
    verify_net_in_out(root, extra_args=["--model_id", model_id])


def test_apple_bundle_perturb_skips_builds_wrapped_network(bundle_copy):
    """``perturb_skips`` perturbs the U-Net's encoder stages too; the wrapped network starts at the base output."""
    from monai.bundle import ConfigParser

    root = bundle_copy("apple_segmentation")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    parser["perturb_skips"] = True
    net = parser.get_parsed_content("network_def")
    assert net.latent_modules == ["model.1.submodule.1.submodule.1.submodule", "model.0", "model.1.submodule.0",
                                  "model.1.submodule.1.submodule.0"]
    assert [p.channels for p in net.perturbers] == [128, 16, 32, 64]
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = net(x)
        net.set_perturbation_enabled(False)
        assert torch.equal(out, net(x))  # zero-initialised perturbers: identical to the deployed model
    assert [tuple(f.shape[1:]) for f in net.latents_in] == [(128, 8, 8), (16, 32, 32), (32, 16, 16), (64, 8, 8)]
