# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The baseline classification bundle: model-zoo ids, no side effect when an id is resolved, a real short run on its
default synthetic data (the `make demo` path), verify_net_in_out, and resuming only the run that was started."""

from __future__ import annotations

import csv
import json

import pytest
from monai.bundle import ConfigParser

from tests.conftest import BUNDLES_DIR, config_expressions, kill_overlay, run_bundle_cli, verify_net_in_out
from tests.conftest import ZOO_IDS as CONFTEST_ZOO_IDS

TINY = {
    "synthetic": {"n_samples": 60, "image_size": 32, "seed": 1},
    "epochs": 1,
    "batch_size": 16,
    "min_group_size": 1,
    "spatial_size": [32, 32],
}
CONFIGS = BUNDLES_DIR / "baseline_classification" / "configs"
ZOO_IDS = (*CONFTEST_ZOO_IDS, "network_def")
#: ids the fairness trial (ERM arm) overrides: plain ids, not nested in expressions
TRIAL_IDS = ("loss", "network_def", "optimizer", "train#dataloader", "validate#key_metric", "train#handlers")


def test_zoo_ids_and_no_side_effect_on_resolution(tmp_path):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json")])
    for key in ZOO_IDS + TRIAL_IDS:
        assert key in parser, key
    assert set(parser["validate#key_metric"]) == {"val_auc"}
    assert not [e for e in config_expressions(parser.get()) if len(e) > 160]
    parser["bundle_root"] = str(tmp_path)
    for key in ("datalist", "network_def", "train#preprocessing", "validate#preprocessing", "loss"):
        parser.get_parsed_content(key)  # resolving ids generates no data and writes no file
    assert parser.get_parsed_content("datalist") == str(tmp_path / "data" / "synthetic" / "datalist.json")
    assert not list(tmp_path.iterdir())
    evaluate = ConfigParser()
    evaluate.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])
    names = set(evaluate["validate#key_metric"]) | set(evaluate["validate#additional_metrics"])
    assert names == {"test_auc", "test_worst_group_auc", "test_auc_gap"}  # the test split is never named val_*


@pytest.mark.slow
def test_baseline_bundle_train_evaluate_infer(bundle_copy, tmp_path):
    root = bundle_copy("baseline_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"))
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "model.pt").exists(), out[-2000:]
    assert "checked: splits" in out  # the datalist check ran before training

    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert set(report) >= {"overall", "groups", "fairness"}
    assert set(report["groups"]) == {"F", "M"}
    for name in ("auc_gap", "es_auc", "eodds", "demographic_parity"):
        assert name in report["fairness"]
    assert (root / "eval" / "report.md").exists()

    infer = {k: overrides[k] for k in ("dataset_dir", "synthetic", "spatial_size")}
    run_bundle_cli(root, ["inference.json"], infer)
    with (root / "eval" / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["case_id", "image", "prob_benign", "prob_malignant", "pred", "label", "group"]
    n_test = len(json.loads((tmp_path / "data" / "datalist.json").read_text())["test"])
    assert len(rows) == n_test and {r["group"] for r in rows} <= {"F", "M"}


def test_baseline_bundle_verify_net_in_out(bundle_copy):
    root = bundle_copy("baseline_classification")
    verify_net_in_out(root)


@pytest.mark.slow
def test_baseline_bundle_resumes_only_the_run_it_started(bundle_copy, tmp_path):
    root = bundle_copy("baseline_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), epochs=2)
    kill = kill_overlay(tmp_path / "kill.json", "train#trainer", epoch=2)
    with pytest.raises(AssertionError, match=r"failed \(9\)"):
        run_bundle_cli(root, ["train.json", kill], overrides)
    resume_file = root / "models" / "resume_checkpoint.pt"
    assert resume_file.is_file()

    other = dict(overrides, dataset_dir=str(tmp_path / "other"), synthetic=dict(TINY["synthetic"], seed=2))
    with pytest.raises(AssertionError, match=r"resume_checkpoint.pt belongs to another run") as e:
        run_bundle_cli(root, ["train.json"], other)
    assert "--resume false" in str(e.value) and resume_file.is_file()

    out = run_bundle_cli(root, ["train.json"], overrides)
    assert "resuming training from" in out and "at epoch 1" in out, out[-3000:]
    assert "Epoch[2]" in out and "Epoch[1] Complete" not in out  # only the remaining epoch was trained
    assert (root / "models" / "model.pt").is_file()
    assert not resume_file.exists()  # removed after the run completed


def _volume_classification_table(root):
    """NIfTI volumes (CT/MR-like, 24 x 20 x 16) whose class is whether the bright ellipsoid is there; sex and age."""
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "vol").mkdir(parents=True)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in (24, 20, 16)], indexing="ij"))
    blob = (((grid - np.asarray([12, 10, 8])[:, None, None, None]) / 5.0) ** 2).sum(0) <= 1
    rows = [["image", "label", "sex", "age", "patient"]]
    for i in range(40):
        y = i % 2
        vol = rng.normal(0.0, 0.3, blob.shape) + 1.5 * y * blob
        nib.save(nib.Nifti1Image(vol.astype(np.float32), np.diag([1.5, 1.5, 2.0, 1.0])), root / f"vol/v{i:02d}.nii.gz")
        rows.append([f"vol/v{i:02d}.nii.gz", y, "FM"[(i // 2) % 2], 30 + i, f"P{i:02d}"])
    with (root / "cases.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root / "cases.csv"


@pytest.mark.slow
def test_baseline_bundle_3d_classification_on_nifti_volumes(bundle_copy, tmp_path):
    """spatial_dims 3: MONAI's 3D ResNet on NIfTI volumes trains, evaluates and reports (no option ignored)."""
    from monai_fair.__main__ import main

    table = _volume_classification_table(tmp_path / "data")
    datalist = tmp_path / "data" / "datalist.json"
    args = ["datalist", str(table), "--label-col", "label", "--attributes", "sex", "--patient-col", "patient"]
    assert main([*args, "--out", str(datalist)]) == 0
    root = bundle_copy("baseline_classification")
    overrides = {
        "datalist": str(datalist),
        "spatial_dims": 3,
        "spatial_size": [16, 16, 16],
        "in_channels": 1,
        "epochs": 1,
        "batch_size": 4,
        "min_group_size": 1,
    }
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "model.pt").exists() and "checked: splits" in out
    assert "sizes 24x20x16 x" in out  # the check saw the volumes as 3D
    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert set(report["groups"]) == {"F", "M"} and "auc_gap" in report["fairness"]
    infer = {k: overrides[k] for k in ("datalist", "spatial_dims", "spatial_size", "in_channels")}
    run_bundle_cli(root, ["inference.json"], infer)
    with (root / "eval" / "predictions.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(json.loads(datalist.read_text())["test"])
    # a 2D spatial_size with spatial_dims 3 is one clear error, not a silent 2D run
    with pytest.raises(AssertionError, match=r"spatial_size must be 3 positive integers \(spatial_dims=3\)"):
        run_bundle_cli(root, ["train.json"], dict(overrides, spatial_size=[16, 16]))


@pytest.mark.parametrize(
    "bundle, method",
    [
        ("fairdi_classification", "FairDi"),
        ("snnl_pruning_classification", "SNNL channel pruning"),
        ("neural_collapse_classification", "The neural-collapse method"),
    ],
)
def test_2d_method_bundles_refuse_spatial_dims_3(bundle, method, tmp_path):
    """A method bundle that is 2D only stops at --spatial_dims 3 with one message (never a silent 2D run)."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLES_DIR / bundle / "configs" / "train.json")])
    parser["bundle_root"] = str(tmp_path)
    assert parser.get_parsed_content("spatial_dims") == 2
    parser["spatial_dims"] = 3
    with pytest.raises(Exception) as e:
        parser.get_parsed_content("initialize")
    text = f"{e.value} {e.value.__cause__}"
    assert f"{method} supports spatial_dims [2], got 3" in text and "baseline_classification" in text
    assert not (tmp_path / "data").exists()  # refused before any data is generated or read
