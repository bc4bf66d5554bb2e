# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the neural_collapse_classification bundle trains with injected label bias, writes the NC trajectory
and plots, evaluates (test_* metric names), infers, suppresses small groups, resumes, follows the zoo id rules and
passes verify_net_in_out."""

from __future__ import annotations

import csv
import json
import math

import pytest
from monai.bundle import ConfigParser

from tests.conftest import ZOO_IDS, config_expressions, kill_overlay, run_bundle_cli, verify_net_in_out

TINY = {
    "synthetic": {"n_samples": 60, "image_size": 32, "seed": 1},
    "epochs": 2,
    "nc_num_evals": 2,
    "batch_size": 16,
    "min_group_size": 1,
}


@pytest.mark.slow
def test_nc_bundle_biased_train_and_evaluate(bundle_copy, tmp_path):
    root = bundle_copy("neural_collapse_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), label_bias_fraction=0.5, label_bias_group="F")
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "model.pt").exists(), out[-2000:]
    biased = json.loads((tmp_path / "data" / "datalist_labelbias.json").read_text())
    assert biased["label_bias"]["n_flipped"] >= 1 and biased["label_bias"]["fraction"] == 0.5

    nc_dir = root / "eval" / "neural_collapse"
    doc = json.loads((nc_dir / "nc_trajectory.json").read_text())
    assert [e["epoch"] for e in doc["evaluations"]] == [1, 2]
    for split in ("train", "test"):
        row = doc["evaluations"][-1][split]
        assert set(row["groups"]) == {"F", "M"}
        assert 0.0 <= row["overall"]["nc4_agreement"] <= 1.0 and "f1" in row["groups"]["F"]
        assert math.isfinite(row["overall"]["nc1"]) or sum(row["counts"]["F"]) < 2
    # training counts follow the stored (biased) labels
    train_counts = doc["evaluations"][0]["train"]["counts"]
    n_pos_f = sum(1 for it in biased["training"] if it["group"] == 0 and it["label"] == 1)
    assert train_counts["F"][1] == n_pos_f
    assert (nc_dir / "plots" / "train_all_metrics.png").stat().st_size > 1000
    assert (nc_dir / "plots" / "test_summary.png").exists()

    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert set(report["groups"]) == {"F", "M"}
    saved = (root / "eval" / "metrics.csv").read_text()
    assert "test_auc" in saved and "val_" not in saved  # the test split's metrics are named test_*

    from monai.bundle import run  # what `python -m monai.bundle run` calls, in this process

    cfg = root / "configs"
    run(config_file=str(cfg / "inference.json"), bundle_root=str(root), dataset_dir=str(tmp_path / "data"))
    with open(root / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(biased["test"]) and {"case_id", "pred"} <= set(rows[0])


@pytest.mark.slow
def test_nc_bundle_killed_run_resumes_the_trajectory(bundle_copy, tmp_path):
    root = bundle_copy("neural_collapse_classification")
    # min_group_size above every group: only "overall" may appear in the trajectory and TensorBoard
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), epochs=3, nc_num_evals=3, min_group_size=1000)
    kill = kill_overlay(tmp_path / "kill.json", "train#trainer", epoch=3)  # hard kill when epoch 3 starts
    with pytest.raises(AssertionError, match=r"failed \(9\)"):
        run_bundle_cli(root, ["train.json", kill], overrides)
    nc_file = root / "eval" / "neural_collapse" / "nc_trajectory.json"
    assert [e["epoch"] for e in json.loads(nc_file.read_text())["evaluations"]] == [1, 2]

    out = run_bundle_cli(root, ["train.json"], overrides)
    assert "resume_checkpoint.pt at epoch 2" in out, out[-3000:]
    doc = json.loads(nc_file.read_text())
    assert [e["epoch"] for e in doc["evaluations"]] == [1, 2, 3]  # one trajectory, no epoch twice or missing
    assert (root / "models" / "model.pt").is_file() and not (root / "models" / "resume_checkpoint.pt").exists()
    text = nc_file.read_text()
    assert '"F"' not in text and '"M"' not in text and doc["evaluations"][-1]["train"]["groups"] == {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(nc_file.parent / "tensorboard")).Reload().Tags()["scalars"]
    assert tags and all(t.endswith("/overall") for t in tags)


def test_nc_bundle_zoo_ids_and_no_side_effects(bundles_dir, tmp_path):
    root = bundles_dir / "neural_collapse_classification" / "configs"
    for configs in (["train.json"], ["train.json", "evaluate.json"], ["train.json", "multi_gpu_train.json"]):
        parser = ConfigParser()
        parser.read_config([str(root / c) for c in configs])
        assert all(k in parser for k in ZOO_IDS), configs
        exprs = config_expressions(parser.get())
        assert max(len(e) for e in exprs) <= 120, max(exprs, key=len)
    # resolving the datalist id (with label bias) generates nothing and writes nothing
    parser = ConfigParser()
    parser.read_config(str(root / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "label_bias_fraction": 0.5})
    assert parser.get_parsed_content("datalist") == str(tmp_path / "data" / "synthetic" / "datalist_labelbias.json")
    assert not any(tmp_path.iterdir())


def test_nc_bundle_verify_net_in_out(bundle_copy):
    root = bundle_copy("neural_collapse_classification")
    verify_net_in_out(root)


def test_terminal_phase_preset_is_one_config_id(bundles_dir, tmp_path):
    """``nc_preset: "terminal_phase"``: SGD with momentum 0.9, 150 epochs, the rate divided by 10 at 1/3 and 2/3 of
    training (the terminal phase of training the paper studies); a 3-epoch run of it here."""
    import torch

    parser = ConfigParser()
    parser.read_config(str(bundles_dir / "neural_collapse_classification" / "configs" / "train.json"))
    parser["nc_preset"] = "terminal_phase"
    assert parser.get_parsed_content("epochs") == 150 and parser.get_parsed_content("lr_milestones") == [50, 100]
    overrides = dict(TINY, epochs=3, bundle_root=str(tmp_path / "b"), dataset_dir=str(tmp_path / "data"))
    overrides["device"] = "$torch.device('cpu')"
    for key, value in overrides.items():
        parser[key] = value
    optimizer = parser.get_parsed_content("optimizer")
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    parser.get_parsed_content("initialize")
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    # milestones max(1, round(0.33 * 3)) = 1 and round(0.67 * 3) = 2: decayed after epochs 1 and 2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0001)
    assert (tmp_path / "b" / "models" / "model.pt").exists()
