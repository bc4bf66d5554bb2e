# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the APPLE bundle's stages (base segmentor, APPLE) and whole pipeline train, evaluate (with the privacy
probe), infer (2D and 3D volumes, sliding window), pass verify_net_in_out and follow the model zoo's ids; the preset is
one config id; the segmentation bundles load user-provided pretrained weights."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_fair.methods.apple import (
    EncoderDecoderPerturber,
    LatentPerturber,
    select_preset,
)
from tests.conftest import BUNDLES_DIR, config_expressions, kill_overlay, run_bundle_cli, verify_net_in_out
from tests.conftest import ZOO_IDS as CONFTEST_ZOO_IDS
from tests.data.fixtures import write_volume_datalist

TINY = {
    "synthetic": {"n_samples": 60, "image_size": 32, "seed": 1, "scenario": "shortcut"},
    "image_size": 32,
    "base_epochs": 1,
    "apple_epochs": 1,
    "batch_size": 16,
    "min_group_size": 1,
    "probe_bootstrap": 20,
    "log_every": 1,
}
CONFIGS = BUNDLES_DIR / "apple_segmentation" / "configs"
ZOO_IDS = (*CONFTEST_ZOO_IDS, "network_def")


def _parser(*files: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in ("train.json", *files)])
    return parser


@pytest.mark.parametrize("stage", [(), ("train_base.json",), ("train_apple.json",)])
def test_apple_configs_follow_the_model_zoo(stage):
    parser = _parser(*stage)
    for key in ZOO_IDS[:-1]:
        assert key in parser, key
    expected = {(): "AppleTrainer", ("train_base.json",): "GroupSupervisedTrainer"}.get(stage, "AppleTrainer")
    assert parser["train#trainer#_target_"].endswith(expected)
    assert parser["train#trainer#train_handlers"] == "@train#handlers"
    # no `$` expression longer than ~120 characters; resolving ids writes nothing (data is made in `initialize`)
    long = [e for e in config_expressions(parser.get()) if len(e) > 125]
    assert not long, long
    assert parser["datalist"] == "$@dataset_dir + '/datalist.json'"  # a path; the data is prepared in initialize
    assert any("prepare_datalist" in e for e in parser["initialize"])
    inference = ConfigParser()
    inference.read_config(str(CONFIGS / "inference.json"))
    assert "network_def" in inference and not [e for e in config_expressions(inference.get()) if len(e) > 125]


def test_apple_stage_alone_needs_a_finished_deployed_segmentor(tmp_path):
    from monai_fair.methods.apple import base_stage_needed

    parser = _parser("train_apple.json")
    parser["bundle_root"] = str(tmp_path)
    with pytest.raises(RuntimeError) as exc:
        parser.get_parsed_content("run#0")
    assert "no finished deployed segmentor" in str(exc.value.__cause__)
    models = tmp_path / "models"
    models.mkdir()
    assert base_stage_needed(models)
    (models / "base_model.pt").write_bytes(b"")  # a deployed segmentor put there: loaded, not trained
    assert not base_stage_needed(models)
    (models / "resume_base.pt").write_bytes(b"")  # ... unless a killed base stage left its resume file
    assert base_stage_needed(models) and not base_stage_needed(models, resume=False)


def test_apple_inference_refuses_to_run_without_a_model(bundle_copy):
    root = bundle_copy("apple_segmentation")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    with pytest.raises(RuntimeError) as exc:
        parser.get_parsed_content("initialize")
    assert "without writing" in str(exc.value.__cause__) and "model.pt" in str(exc.value.__cause__)
    parser["spatial_dims"], parser["model_id"] = 3, "sam_like"
    with pytest.raises(RuntimeError) as exc:
        parser.get_parsed_content("initialize#1")
    assert "supports spatial_dims [2], got 3" in str(exc.value.__cause__)


@pytest.mark.slow
def test_apple_bundle_stages_evaluate_infer(bundle_copy, tmp_path):
    """Stage by stage (base segmentor, then APPLE), then evaluation with the probe, then inference."""
    root = bundle_copy("apple_segmentation")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"))
    run_bundle_cli(root, ["train.json", "train_base.json"], overrides)
    models = root / "models"
    assert (models / "base_model.pt").is_file() and not (models / "model.pt").exists()
    # the APPLE stage, then the evaluation, in one process (saves a start-up)
    run = _runs("train_apple.json", "evaluate.json")
    out = run_bundle_cli(root, ["train.json", "train_apple.json", "evaluate.json"], dict(overrides, run=run))
    assert "discriminator_auc" in out and "discriminator_balanced_accuracy" in out
    assert all(term in out for term in ("perturber_loss", "segmentation_loss", "privacy_loss", "discriminator_loss"))
    assert not re.search(r"\bd_acc\b", out)  # raw accuracy is never logged
    base = torch.load(models / "base_model.pt", weights_only=True)
    full = torch.load(models / "model.pt", weights_only=True)
    for k, v in base.items():  # the deployed weights inside the APPLE checkpoint are exactly the base checkpoint's
        assert torch.equal(full["network." + k], v), k
    assert any(k.startswith("perturbers.0.") for k in full)

    assert "test_mean_dice" in out and "test_dice_gap" in out  # the test split's metrics are test_*
    for stage in ("before", "after"):
        report = json.loads((root / "eval" / stage / "report.json").read_text())
        assert set(report["groups"]) == {"F", "M"}
    comparison = json.loads((root / "eval" / "apple_comparison.json").read_text())
    for kind in ("linear", "mlp"):
        for metric in ("auc", "balanced_accuracy"):
            row = comparison[f"probe/{kind}/{metric}"]
            assert 0.0 <= row["after"] <= 1.0 and len(row["after_ci"]) == 2, row
    assert comparison["probe_protocol"]["fit"] == "validation latents"
    assert "probe/linear/auc" in (root / "eval" / "apple_comparison.md").read_text()
    assert (root / "eval" / "predictions.csv").read_text().startswith("case_id,image,dice,iou")

    run_bundle_cli(root, ["inference.json"], {"dataset_dir": str(tmp_path / "data"), "image_size": 32})
    n_test = len(json.loads((tmp_path / "data" / "datalist.json").read_text())["test"])
    assert len(list((root / "eval" / "inference").glob("*_seg.nii.gz"))) == n_test


@pytest.mark.slow
def test_apple_bundle_sam_like_whole_pipeline(bundle_copy, tmp_path):
    root = bundle_copy("apple_segmentation")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), model_id="sam_like")
    run_bundle_cli(root, ["train.json", "evaluate.json"], dict(overrides, run=_runs("train.json", "evaluate.json")))
    for name in ("base_model.pt", "model.pt", "perturber.pt"):
        assert (root / "models" / name).is_file(), name
    comparison = json.loads((root / "eval" / "apple_comparison.json").read_text())
    assert comparison["es_dice"]["change"] == pytest.approx(
        comparison["es_dice"]["after"] - comparison["es_dice"]["before"]
    )
    assert "probe/mlp/auc" in comparison


def _runs(*files: str) -> list[str]:
    """The ``run`` lists of ``files`` one after the other: several stages in one process (saves start-ups)."""
    return [step for f in files for step in json.loads((CONFIGS / f).read_text())["run"]]


@pytest.mark.slow
def test_apple_bundle_3d_volumes_patches_and_sliding_window(bundle_copy, tmp_path):
    """``--spatial_dims 3``: 3D U-Net, 3D perturber, patch training (16^3 patches of 32 x 24 x 20 volumes), sliding
    window validation / evaluation / inference, the probe on 3D latents."""
    root = bundle_copy("apple_segmentation")
    overrides = dict(
        TINY,
        datalist=write_volume_datalist(tmp_path / "volumes", 8, (32, 24, 20)),
        spatial_dims=3,
        patch_size=[16, 16, 16],
    )
    overrides.update(batch_size=2, val_batch_size=1, patch_samples=2)
    run_bundle_cli(root, ["train.json", "evaluate.json"], dict(overrides, run=_runs("train.json", "evaluate.json")))
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    assert state["perturbers.0.encoder.0.0.weight"].ndim == 5 and state["perturbers.0.out.weight"].ndim == 5  # Conv3d
    report = json.loads((root / "eval" / "after" / "report.json").read_text())
    assert report["overall"]["n"] == 2
    assert "probe/linear/auc" in json.loads((root / "eval" / "apple_comparison.json").read_text())
    infer = {k: overrides[k] for k in ("datalist", "spatial_dims", "patch_size")}
    run_bundle_cli(root, ["inference.json"], infer)
    masks = sorted((root / "eval" / "inference").glob("*_seg.nii.gz"))
    assert len(masks) == 2
    import nibabel as nib

    assert np.asarray(nib.load(str(masks[0])).dataobj).shape[:3] == (32, 24, 20)  # whole volume, not a patch


@pytest.mark.parametrize("model_id", ["unet", "sam_like"])
def test_apple_bundle_verify_net_in_out(bundle_copy, model_id):
    root = bundle_copy("apple_segmentation")
    verify_net_in_out(root, extra_args=["--model_id", model_id])


def test_apple_bundle_perturb_skips_builds_wrapped_network(bundle_copy):
    """``perturb_skips`` perturbs the U-Net's encoder stages too; the wrapped network starts at the base output."""
    root = bundle_copy("apple_segmentation")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    parser["perturb_skips"] = True
    parser["preset"] = "compact"
    net = parser.get_parsed_content("network_def")
    assert net.latent_modules == [
        "model.1.submodule.1.submodule.1.submodule",
        "model.0",
        "model.1.submodule.0",
        "model.1.submodule.1.submodule.0",
    ]
    assert [p.channels for p in net.perturbers] == [128, 16, 32, 64]
    assert [p.net[0].out_channels for p in net.perturbers] == [128, 16, 32, 64]  # default width spans the latent
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = net(x)
        net.set_perturbation_enabled(False)
        assert torch.equal(out, net(x))  # zero-initialised perturbers: identical to the deployed model
    assert [tuple(f.shape[1:]) for f in net.latents_in] == [(128, 8, 8), (16, 32, 32), (32, 16, 16), (64, 8, 8)]
    parser["preset"] = "paper"  # the paper's encoder-decoder at every site, output = the site's channels
    net = parser.get_parsed_content("network_def", lazy=False)
    assert [p.out.out_channels for p in net.perturbers] == [128, 16, 32, 64]
    with torch.no_grad():
        out = net(x)
        net.set_perturbation_enabled(False)
        assert torch.equal(out, net(x))


@pytest.mark.slow
def test_apple_bundle_killed_in_each_stage_resumes(bundle_copy, tmp_path):
    root = bundle_copy("apple_segmentation")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), base_epochs=2, apple_epochs=2)
    models = root / "models"

    def kill_at(trainer):  # a hard kill (no clean-up, exit code 9) when epoch 2 of `trainer` starts
        # the APPLE stage's kill is added right before it runs, so it is built after the base stage as in a normal run
        where = root if trainer == "train#trainer" else None
        return kill_overlay(tmp_path / f"kill_{trainer.split('#')[0]}.json", trainer, epoch=2, bundle_root=where)

    # killed in the base stage after one epoch: base_model.pt exists, but the stage resumes instead of being
    # mistaken for a deployed segmentor
    with pytest.raises(AssertionError, match=r"failed \(9\)"):
        run_bundle_cli(root, ["train.json", kill_at("base#trainer")], overrides)
    assert (models / "base_model.pt").is_file() and (models / "resume_base.pt").is_file()
    # killed again, now in the APPLE stage after its first epoch
    with pytest.raises(AssertionError, match=r"failed \(9\)") as exc:
        run_bundle_cli(root, ["train.json", kill_at("train#trainer")], overrides)
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
