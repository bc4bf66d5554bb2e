# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the APPLE bundle trains base + perturber, evaluates before/after, infers, passes verify_net_in_out."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import kill_overlay, run_bundle_cli, verify_net_in_out

TINY = {
    "synthetic": {"n_samples": 60, "image_size": 32, "seed": 1},
    "image_size": 32,
    "base_epochs": 1,
    "apple_epochs": 1,
    "batch_size": 16,
    "min_group_size": 1,
}


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
    assert comparison["es_dice"]["change"] == pytest.approx(
        comparison["es_dice"]["after"] - comparison["es_dice"]["before"]
    )

    if model_id != "unet":  # the steps below do not depend on the network family; run them once
        return
    # a second training run reuses the deployed segmentor instead of retraining it
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert "using the deployed segmentor" in out
    assert torch.equal(
        torch.load(models / "base_model.pt", weights_only=True)[next(iter(base))], next(iter(base.values()))
    )

    run_bundle_cli(
        root,
        ["inference.json"],
        {"dataset_dir": str(tmp_path / "data"), "synthetic": TINY["synthetic"], "image_size": 32, "model_id": model_id},
    )
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
    assert net.latent_modules == [
        "model.1.submodule.1.submodule.1.submodule",
        "model.0",
        "model.1.submodule.0",
        "model.1.submodule.1.submodule.0",
    ]
    assert [p.channels for p in net.perturbers] == [128, 16, 32, 64]
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = net(x)
        net.set_perturbation_enabled(False)
        assert torch.equal(out, net(x))  # zero-initialised perturbers: identical to the deployed model
    assert [tuple(f.shape[1:]) for f in net.latents_in] == [(128, 8, 8), (16, 32, 32), (32, 16, 16), (64, 8, 8)]


@pytest.mark.slow
def test_apple_bundle_killed_in_each_stage_resumes(bundle_copy, tmp_path):
    root = bundle_copy("apple_segmentation")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), base_epochs=2, apple_epochs=2)
    models = root / "models"

    def kill_at(stage):  # a hard kill (no clean-up, exit code 9) when epoch 2 of `stage` starts
        return kill_overlay(tmp_path / f"kill_{stage}.json", f"{stage}#trainer", epoch=2)

    # killed in the base stage after one epoch: base_model.pt exists, but the stage resumes instead of being
    # mistaken for a deployed segmentor
    with pytest.raises(AssertionError, match=r"failed \(9\)"):
        run_bundle_cli(root, ["train.json", kill_at("base")], overrides)
    assert (models / "base_model.pt").is_file() and (models / "resume_base.pt").is_file()
    # killed again, now in the APPLE stage after its first epoch
    with pytest.raises(AssertionError, match=r"failed \(9\)") as exc:
        run_bundle_cli(root, ["train.json", kill_at("apple")], overrides)
    assert "resume_base.pt at epoch 1" in str(exc.value)
    assert (models / "resume_apple.pt").is_file()
    base_before = torch.load(models / "base_model.pt", weights_only=True)

    out = run_bundle_cli(root, ["train.json"], overrides)
    assert "resume_base.pt at epoch 2" in out  # the finished base stage is reloaded and trains nothing
    assert "resume_apple.pt at epoch 1" in out, out[-3000:]
    base_after = torch.load(models / "base_model.pt", weights_only=True)
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before)
    for name in ("model.pt", "perturber.pt"):
        assert (models / name).is_file(), name
    assert not (models / "resume_base.pt").exists() and not (models / "resume_apple.pt").exists()
