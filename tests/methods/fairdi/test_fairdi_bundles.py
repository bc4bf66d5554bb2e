# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the FairDi classification bundle runs each stage for real on a tiny dataset, evaluates, infers."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import kill_overlay, run_bundle_cli, verify_net_in_out

TINY = {
    "synthetic": {"n_samples": 60, "image_size": 32, "seed": 1},
    "baseline_epochs": 1,
    "teacher_epochs": 1,
    "student_epochs": 1,
    "batch_size": 16,
    "min_group_size": 1,
    "teacher_min_group_size": 4,
}


@pytest.mark.slow
def test_fairdi_classification_stages_evaluate_infer(bundle_copy, tmp_path):
    root = bundle_copy("fairdi_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"))
    run_bundle_cli(root, ["train.json", "train_baseline.json"], overrides)
    assert (root / "models" / "baseline.pt").exists()
    run_bundle_cli(root, ["train.json", "train_teachers.json"], overrides)
    teachers = torch.load(root / "models" / "teachers.pt", weights_only=True)
    assert any(k.startswith("teachers.1.") for k in teachers)  # one network per group
    run_bundle_cli(root, ["train.json", "train_student.json"], overrides)
    assert (root / "models" / "model.pt").exists()

    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert set(report["groups"]) == {"F", "M"}
    assert "es_auc" in report["fairness"] and "auc_gap" in report["fairness"]

    # the student needs no group at inference: the inference datalist items carry only the image
    run_bundle_cli(root, ["inference.json"], {"dataset_dir": str(tmp_path / "data"), "synthetic": TINY["synthetic"]})
    lines = (root / "eval" / "predictions.csv").read_text().strip().splitlines()
    assert len(lines) > 0 and len(lines[0].split(",")) == 3


@pytest.mark.slow
def test_fairdi_classification_whole_pipeline_heads_online(bundle_copy, tmp_path):
    """One ``train.json`` run: baseline -> head teachers on the frozen backbone -> student with online teachers."""
    root = bundle_copy("fairdi_classification")
    overrides = dict(
        TINY,
        dataset_dir=str(tmp_path / "data"),
        teacher_mode="heads",
        teacher_cache=False,
        selection_metric="es_auc",
        baseline_loss="ce",
    )
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "model.pt").exists(), out[-2000:]
    teachers = torch.load(root / "models" / "teachers.pt", weights_only=True)
    assert {"heads.0.weight", "heads.1.weight"} <= set(teachers)


@pytest.mark.slow
def test_fairdi_classification_killed_student_resumes(bundle_copy, tmp_path):
    """Killed in the student stage: the restart reloads the finished baseline (no epoch), loads the teachers instead
    of retraining them, and continues the student from its last epoch; the stage files are removed at the end."""
    root = bundle_copy("fairdi_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), student_epochs=2)
    # a hard kill (no clean-up, exit code 9) when the student's epoch 2 starts, added to train.json's run list
    kill = kill_overlay(tmp_path / "kill.json", "student#trainer", epoch=2, bundle_root=root)
    with pytest.raises(AssertionError, match=r"failed \(9\)"):
        run_bundle_cli(root, ["train.json", kill], overrides)
    models = root / "models"
    assert (models / "resume_baseline.pt").is_file() and (models / "resume_student.pt").is_file()
    teachers_before = (models / "teachers.pt").stat().st_mtime_ns

    out = run_bundle_cli(root, ["train.json"], overrides)
    assert "resume_baseline.pt at epoch 1" in out and "resume_student.pt at epoch 1" in out, out[-3000:]
    assert (models / "teachers.pt").stat().st_mtime_ns == teachers_before  # loaded, not retrained
    assert (models / "model.pt").is_file()
    assert not (models / "resume_baseline.pt").exists() and not (models / "resume_student.pt").exists()


def test_fairdi_classification_verify_net_in_out(bundle_copy):
    root = bundle_copy("fairdi_classification")
    verify_net_in_out(root)


SEG_TINY = {
    "synthetic": {"n_samples": 40, "image_size": 32, "seed": 1},
    "baseline_epochs": 1,
    "teacher_epochs": 1,
    "student_epochs": 1,
    "batch_size": 8,
    "min_group_size": 1,
    "teacher_min_group_size": 4,
}


@pytest.mark.slow
def test_fairdi_segmentation_pipeline_evaluate_infer(bundle_copy, tmp_path):
    root = bundle_copy("fairdi_segmentation")
    overrides = dict(SEG_TINY, dataset_dir=str(tmp_path / "data"))
    out = run_bundle_cli(root, ["train.json"], overrides)
    for name in ("baseline.pt", "teachers.pt", "model.pt"):
        assert (root / "models" / name).exists(), out[-2000:]
    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert "es_dice" in report["fairness"] and "dice_gap" in report["fairness"]
    run_bundle_cli(
        root, ["inference.json"], {"dataset_dir": str(tmp_path / "data"), "synthetic": SEG_TINY["synthetic"]}
    )
    assert list((root / "eval" / "masks").glob("*_seg.nii.gz"))


def test_fairdi_segmentation_verify_net_in_out(bundle_copy):
    root = bundle_copy("fairdi_segmentation")
    verify_net_in_out(root)
