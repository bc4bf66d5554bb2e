# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the baseline bundle trains, evaluates (fairness report), infers and passes verify_net_in_out."""

from __future__ import annotations

import json

import pytest

from tests.conftest import kill_overlay, run_bundle_cli, verify_net_in_out

TINY = {"synthetic": {"n_samples": 60, "image_size": 32, "seed": 1}, "epochs": 1, "batch_size": 16, "min_group_size": 1}


@pytest.mark.slow
def test_baseline_bundle_train_evaluate_infer(bundle_copy, tmp_path):
    root = bundle_copy("baseline_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"))
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "model.pt").exists(), out[-2000:]

    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert set(report) >= {"overall", "groups", "fairness"}
    assert set(report["groups"]) == {"F", "M"}
    for name in ("auc_gap", "es_auc", "eodds", "demographic_parity"):
        assert name in report["fairness"]
    assert (root / "eval" / "report.md").exists()

    run_bundle_cli(root, ["inference.json"], {"dataset_dir": str(tmp_path / "data"), "synthetic": TINY["synthetic"]})
    lines = (root / "eval" / "predictions.csv").read_text().strip().splitlines()
    assert len(lines) > 0 and len(lines[0].split(",")) == 3  # filename + 2 class probabilities


def test_baseline_bundle_verify_net_in_out(bundle_copy):
    root = bundle_copy("baseline_classification")
    verify_net_in_out(root)


@pytest.mark.slow
def test_baseline_bundle_killed_run_resumes(bundle_copy, tmp_path):
    root = bundle_copy("baseline_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), epochs=2)
    kill = kill_overlay(tmp_path / "kill.json", "train#trainer", epoch=2)
    with pytest.raises(AssertionError, match=r"failed \(9\)"):
        run_bundle_cli(root, ["train.json", kill], overrides)
    resume_file = root / "models" / "resume_checkpoint.pt"
    assert resume_file.is_file()

    out = run_bundle_cli(root, ["train.json"], overrides)
    assert "resuming training from" in out and "at epoch 1" in out, out[-3000:]
    assert "Epoch[2]" in out and "Epoch[1] Complete" not in out  # only the remaining epoch was trained
    assert (root / "models" / "model.pt").is_file()
    assert not resume_file.exists()  # removed after the run completed
