# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the FairDi bundles run each stage for real on tiny data, evaluate any stage, infer; 3D volumes."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import BUNDLES_DIR, ZOO_IDS, kill_overlay, run_bundle_cli, verify_net_in_out
from tests.data.fixtures import write_volume_datalist

TINY = {
    "synthetic": {"n_samples": 60, "image_size": 32, "seed": 1},
    "spatial_size": [32, 32],
    "baseline_epochs": 1,
    "teacher_epochs": 1,
    "student_epochs": 1,
    "batch_size": 16,
    "min_group_size": 1,
    "teacher_min_group_size": 4,
}
#: another architecture than the default ResNet-10: overriding ``network_def`` alone must work for every stage
SMALL_NET = {
    "_target_": "monai.networks.nets.Classifier",
    "in_shape": [3, 32, 32],
    "classes": 2,
    "channels": [4, 8],
    "strides": [2, 2],
}
STAGES = {"baseline": "train_baseline.json", "teachers": "train_teachers.json", "student": "train_student.json"}


@pytest.mark.parametrize("bundle", ["fairdi_classification", "fairdi_segmentation"])
@pytest.mark.parametrize("stage", [None, *STAGES])
def test_every_stage_config_has_the_zoo_ids_and_short_expressions(bundle, stage):
    """Each stage file (on train.json) defines the model-zoo ids; its ``train#trainer`` is that stage's trainer and
    equals the one ``train.json`` runs for the stage; no ``$`` expression is longer than 120 characters."""
    configs = BUNDLES_DIR / bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json")] + ([str(configs / STAGES[stage])] if stage else []))
    for key in ZOO_IDS:
        assert key in parser, (stage, key)
    trainer = parser["train#trainer"]
    assert trainer["train_handlers"] == "@train#handlers"
    if stage in ("baseline", "teachers"):  # the same trainer as train.json's stage section
        assert trainer == {**parser[f"{stage}#trainer"], "train_handlers": "@train#handlers"}
    else:
        assert trainer["_target_"] == "monai_fair.methods.fairdi.FairDiStudentTrainer"
    for name in ("train.json", "evaluate.json", "inference.json", *STAGES.values()):
        text = json.loads((configs / name).read_text())

        def walk(x, name=name):
            if isinstance(x, str) and x.startswith("$"):
                assert len(x) <= 120, (name, x)
            elif isinstance(x, dict):
                [walk(v) for v in x.values()]
            elif isinstance(x, list):
                [walk(v) for v in x]

        walk(text)


def test_resolving_the_trainers_has_no_side_effect(tmp_path, bundles_dir):
    """Resolving every stage's trainer (on an existing datalist) trains nothing, writes nothing but the empty
    TensorBoard event files MONAI's ``TensorBoardStatsHandler`` opens when it is built, and loads no stage
    checkpoint: teachers are loaded and outputs cached only when a trainer starts."""
    from monai_fair.data import ensure_synthetic_dataset

    datalist = ensure_synthetic_dataset(tmp_path / "data", task="classification", **TINY["synthetic"])
    configs = bundles_dir / "fairdi_classification" / "configs"
    parser = ConfigParser()
    parser.read_config(str(configs / "train.json"))
    parser.update({"bundle_root": str(tmp_path / "bundle"), "datalist": datalist, **TINY, "network_def": SMALL_NET})
    for key in ("baseline#trainer", "teachers#trainer", "train#trainer", "validate#evaluator"):
        parser.get_parsed_content(key)
    written = [p for p in (tmp_path / "bundle").rglob("*") if p.is_file() and "tfevents" not in p.name]
    assert not written


def _evaluate_in_process(root, overrides, stage_file=None) -> dict:
    """``train.json`` [+ a stage file] + ``evaluate.json`` through MONAI's bundle API in this process."""
    from monai.bundle import ConfigWorkflow

    names = ["train.json", *([stage_file] if stage_file else []), "evaluate.json"]
    configs = [str(root / "configs" / f) for f in names]
    wf = ConfigWorkflow(config_file=configs, workflow_type="eval", bundle_root=str(root), **overrides)
    wf.initialize()
    wf.run()
    wf.finalize()
    return json.loads((root / "eval" / "report.json").read_text())


@pytest.mark.slow
def test_fairdi_classification_stages_evaluate_any_stage_infer(bundle_copy, tmp_path):
    """One stage at a time with only ``network_def`` overridden (another architecture); ``evaluate.json`` scores
    the stage-0 model (a stage-0-only run), the routed teachers and the student; inference writes a predictions CSV
    with a header."""
    root = bundle_copy("fairdi_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), network_def=SMALL_NET)
    run_bundle_cli(root, ["train.json", "train_baseline.json"], overrides)
    models = root / "models"
    assert (models / "baseline.pt").is_file() and not (models / "resume_baseline.pt").exists()
    # a stage-0-only run is scored by evaluate.json on its stage file (eval_stage = baseline), with test_* metric
    # names and a predictions CSV
    report = _evaluate_in_process(root, overrides, "train_baseline.json")
    assert set(report["groups"]) == {"F", "M"}
    metrics = (root / "eval" / "metrics.csv").read_text()
    assert "test_selection" in metrics and "val_" not in metrics
    with open(root / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"case_id", "pred", "label", "group"} <= set(rows[0])

    run_bundle_cli(root, ["train.json", "train_teachers.json"], overrides)
    teachers = torch.load(models / "teachers.pt", weights_only=True)
    assert any(k.startswith("teachers.1.") for k in teachers)  # one network per group
    record = json.loads((models / "teachers.json").read_text())
    assert record["criterion"] == "balanced_accuracy" and "not fitted" in record["threshold_origin"]
    assert _evaluate_in_process(root, dict(overrides, eval_stage="teachers"))["overall"]["n"] > 0

    run_bundle_cli(root, ["train.json", "train_student.json"], overrides)
    assert (models / "model.pt").is_file()
    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert "es_auc" in report["fairness"] and "auc_gap" in report["fairness"]

    # the student needs no group at inference
    infer = {"dataset_dir": str(tmp_path / "data"), "synthetic": TINY["synthetic"], "spatial_size": [32, 32]}
    run_bundle_cli(root, ["inference.json"], dict(infer, network_def=SMALL_NET))
    with open(root / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"case_id", "image", "prob_benign", "prob_malignant", "pred"} <= set(rows[0])


@pytest.mark.slow
def test_fairdi_classification_heads_online_killed_student_resumes(bundle_copy, tmp_path):
    """One ``train.json`` run (ERM stage 0 -> head teachers on the frozen backbone -> student with online teachers),
    hard-killed in the student stage: the restart reloads the finished stage 0 and teachers (no epoch, teachers.pt
    untouched) and continues the student from its last epoch; the resume files are removed at the end."""
    root = bundle_copy("fairdi_classification")
    small_resnet = {"_target_": "monai.networks.nets.resnet10", "spatial_dims": 2, "n_input_channels": 3}
    overrides = dict(
        TINY,
        dataset_dir=str(tmp_path / "data"),
        student_epochs=2,
        teacher_mode="heads",
        teacher_cache=False,
        selection_metric="es_auc",
        baseline_loss="ce",
        network_def=dict(small_resnet, num_classes=2, widen_factor=0.25),
    )
    # a hard kill (no clean-up, exit code 9) when the student's epoch 2 starts, added to train.json's run list
    kill = kill_overlay(tmp_path / "kill.json", "train#trainer", epoch=2, bundle_root=root)
    with pytest.raises(AssertionError, match=r"failed \(9\)"):
        run_bundle_cli(root, ["train.json", kill], overrides)
    models = root / "models"
    assert {p.name for p in models.glob("resume_*.pt")} == {f"resume_{s}.pt" for s in STAGES}
    teachers = torch.load(models / "teachers.pt", weights_only=True)
    assert {"heads.0.weight", "heads.1.weight"} <= set(teachers)
    teachers_before = (models / "teachers.pt").stat().st_mtime_ns

    out = run_bundle_cli(root, ["train.json"], overrides)
    for stage in STAGES:
        assert f"resume_{stage}.pt at epoch 1" in out, out[-3000:]
    assert (models / "teachers.pt").stat().st_mtime_ns == teachers_before  # loaded, not retrained
    assert (models / "model.pt").is_file()
    assert not list(models.glob("resume_*.pt"))


def test_fairdi_reimplementation_preset_is_one_config_id(bundle_copy, tmp_path):
    """``fairdi_preset: "reimplementation"``: head teachers on the frozen stage-0 backbone, a student that keeps the
    frozen stage-0 backbone with a new head, FairVision's FIS distance; the teachers stage writes the premise check."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / "fairdi_classification" / "configs" / "train.json"))
    parser["fairdi_preset"] = "reimplementation"
    got = {k: parser.get_parsed_content(k) for k in ("teacher_mode", "student_init", "student_freeze_backbone")}
    assert got == {"teacher_mode": "heads", "student_init": "baseline", "student_freeze_backbone": True}
    assert parser.get_parsed_content("fis") == {
        "c": 0.5,
        "individual_temperature": 1.0,
        "group_temperature": 1.0,
        "group_distance": "wasserstein",
        "distance_scale": "absolute",
    }
    root = bundle_copy("fairdi_classification")
    small_resnet = {"_target_": "monai.networks.nets.resnet10", "spatial_dims": 2, "n_input_channels": 3}
    overrides = dict(
        TINY,
        dataset_dir=str(tmp_path / "data"),
        fairdi_preset="reimplementation",
        network_def=dict(small_resnet, num_classes=2, widen_factor=0.25),
    )
    run_bundle_cli(root, ["train.json"], overrides)
    models = root / "models"
    record = json.loads((models / "teachers.json").read_text())
    assert record["premise"]["checked"] and record["premise"]["metric"] == "auc"
    assert isinstance(record["premise"]["teachers_beating_stage0"], list) and record["premise"]["verdict"]
    assert {"heads.0.weight", "heads.1.weight"} <= set(torch.load(models / "teachers.pt", weights_only=True))
    base = torch.load(models / "baseline.pt", weights_only=True)
    student = torch.load(models / "model.pt", weights_only=True)
    base, student = base.get("model", base), student.get("model", student)
    backbone = [k for k in base if not k.startswith("fc.")]
    assert all(torch.equal(base[k], student[k]) for k in backbone)  # frozen stage-0 backbone, BatchNorm included
    assert not torch.equal(base["fc.weight"], student["fc.weight"])  # a new head


@pytest.mark.parametrize("bundle", ["fairdi_classification", "fairdi_segmentation"])
def test_fairdi_verify_net_in_out(bundle_copy, bundle):
    verify_net_in_out(bundle_copy(bundle))


SEG_TINY = {
    "synthetic": {"n_samples": 40, "image_size": 32, "seed": 1},
    "patch_size": [32, 32],
    "baseline_epochs": 1,
    "teacher_epochs": 1,
    "student_epochs": 1,
    "batch_size": 4,
    "min_group_size": 1,
    "teacher_min_group_size": 4,
}


@pytest.mark.slow
def test_fairdi_segmentation_2d_pipeline(bundle_copy, tmp_path):
    """The default (2D) segmentation bundle, whole pipeline in one ``train.json`` run (evaluation and inference
    are exercised on 3D volumes below)."""
    root = bundle_copy("fairdi_segmentation")
    out = run_bundle_cli(root, ["train.json"], dict(SEG_TINY, dataset_dir=str(tmp_path / "data")))
    for name in ("baseline.pt", "teachers.pt", "model.pt", "teachers.json"):
        assert (root / "models" / name).exists(), out[-2000:]
    assert json.loads((root / "models" / "teachers.json").read_text())["criterion"] == "dice"


@pytest.mark.slow
def test_fairdi_segmentation_3d_volumes_one_switch(bundle_copy, tmp_path):
    """``--spatial_dims 3`` is the only switch: 3D U-Net for every stage, 16^3 training patches of 24 x 20 x 16
    volumes, teachers distilled on the same patches (online), sliding-window validation, evaluation, inference."""
    root = bundle_copy("fairdi_segmentation")
    overrides = dict(
        SEG_TINY,
        datalist=write_volume_datalist(tmp_path / "volumes", 12, (24, 20, 16)),
        spatial_dims=3,
        patch_size=[16, 16, 16],
    )
    overrides.update(batch_size=2, teacher_min_group_size=2)
    overrides.pop("synthetic")
    run_bundle_cli(root, ["train.json"], overrides)
    teachers = torch.load(root / "models" / "teachers.pt", weights_only=True)
    assert next(v for k, v in teachers.items() if k.endswith("weight") and v.ndim > 2).ndim == 5  # Conv3d
    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert report["overall"]["n"] == 3 and "es_dice" in report["fairness"]
    run_bundle_cli(root, ["inference.json"], {k: overrides[k] for k in ("datalist", "spatial_dims", "patch_size")})
    assert (root / "eval" / "predictions.csv").read_text().startswith("case_id,image,dice,iou")
    masks = sorted((root / "eval" / "masks").glob("*_seg.nii.gz"))
    assert len(masks) == 3
    import nibabel as nib
    import numpy as np

    assert np.asarray(nib.load(str(masks[0])).dataobj).shape[:3] == (24, 20, 16)  # whole volume, not a patch


@pytest.mark.slow
def test_fairdi_classification_takes_real_images_as_they_come(bundle_copy, tmp_path):
    """Non-square RGB JPEGs (60 x 45) for a one-channel network at a non-square ``spatial_size``: channels matched,
    images resized, no 90-degree rotation that would break the batch (stage 0 through the bundle)."""
    from monai_fair.data.datalist import write_fair_datalist
    from tests.data.fixtures import write_jpeg_cases

    root_data = tmp_path / "jpeg"
    write_jpeg_cases(root_data, n=24)
    items = [
        {"image": str(root_data / f"images/ISIC_{i:05d}.jpg"), "label": i % 2, "group": (i // 2) % 2} for i in range(24)
    ]
    datalist = write_fair_datalist(
        root_data / "datalist.json", {"training": items[:16], "validation": items[16:]}, ["F", "M"]
    )
    gray_net = dict(SMALL_NET, in_shape=[1, 40, 30])
    overrides = dict(TINY, datalist=str(datalist), in_channels=1, spatial_size=[40, 30], network_def=gray_net)
    overrides.pop("synthetic")
    root = bundle_copy("fairdi_classification")
    run_bundle_cli(root, ["train.json", "train_baseline.json"], overrides)
    assert (root / "models" / "baseline.pt").is_file()
