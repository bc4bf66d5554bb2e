# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the SNNL pruning bundle trains a baseline, prunes + fine-tunes (and runs its controls and FairPrune
from config files, no PYTHONPATH), reports before/after, evaluates with test_* names, infers; zoo ids parse."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import ZOO_IDS, config_expressions, run_bundle_cli, verify_net_in_out

TINY = {"synthetic": {"n_samples": 60, "image_size": 32, "seed": 1}, "epochs": 1, "batch_size": 16, "min_group_size": 1}
TINY["spatial_size"] = [32, 32]
PRUNE = {
    "n_per_round": 2,
    "max_rounds": 2,
    "finetune_epochs": 1,
    "score_batch_size": 16,
    "keep_unpruned_if_best": False,
    "max_f1_drop": 1.0,
    "fate_patience": 2,
}


def run_bundle_in_process(root, configs: list[str], overrides: dict) -> None:
    """``monai.bundle.run`` (what ``python -m monai.bundle run`` calls) in this process."""
    from monai.bundle import run

    cfg = root / "configs"
    run(
        config_file=[str(cfg / c) for c in configs],
        meta_file=str(cfg / "metadata.json"),
        bundle_root=str(root),
        **overrides,
    )


STAGES = (["train.json"], ["train.json", "prune.json"])
ARMS = ("control_finetune_only.json", "control_random_pruning.json", "fairprune.json")


@pytest.mark.parametrize("configs", [*STAGES, *(["train.json", "prune.json", arm] for arm in ARMS)])
def test_snnl_bundle_zoo_ids_and_short_expressions(bundles_dir, configs):
    root = bundles_dir / "snnl_pruning_classification" / "configs"
    parser = ConfigParser()
    parser.read_config([str(root / c) for c in configs])
    for key in ZOO_IDS:
        assert key in parser, f"{configs}: missing {key}"
    exprs = config_expressions(parser.get())
    assert max(len(e) for e in exprs) <= 120, max(exprs, key=len)
    # resolving the data ids has no side effect: nothing is generated before initialize
    parser["bundle_root"] = "/nonexistent_h6"
    assert parser.get_parsed_content("datalist") == "/nonexistent_h6/data/synthetic/datalist.json"


@pytest.mark.slow
def test_snnl_bundle_stages_arms_evaluate_infer(bundle_copy, tmp_path):
    root = bundle_copy("snnl_pruning_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"))
    run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "baseline.pt").exists()

    out = run_bundle_cli(root, ["train.json", "prune.json"], dict(overrides, **PRUNE))
    hist = json.loads((root / "models" / "pruning_history.json").read_text())
    assert hist["layer_name"] == "features.12" and hist["best_round"] >= 1 and hist["selection"] == "snnl"
    assert len(hist["pruned_channels"]) == 2 * hist["best_round"]
    assert hist["settings"]["fairness_metric"].startswith("eodds_mean") and "max_f1_drop" in hist["settings"]
    # every round carries its validation and test figures, rejected rounds included
    for r in hist["rounds"]:
        assert {"macro_f1", "eodds_mean", "fate", "test_macro_f1", "test_eodds_mean", "test_fate"} <= set(r)
    assert hist["rounds"][0]["test_fate"] == 0.0
    for part in ("before", "after"):
        report = json.loads((root / "eval" / part / "report.json").read_text())
        assert set(report) >= {"overall", "groups", "fairness"}
    # the saved model loads into the unpruned architecture and its pruned channels are exactly zero
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    w = state["features.12.weight"]
    assert torch.all(w[hist["pruned_channels"]] == 0) and torch.all(
        state["features.13.weight"][hist["pruned_channels"]] == 0
    )
    assert "channel pruning round 1" in out and "val_fate" in out

    # the controls and FairPrune: config files on top of prune.json (whose CLI run above needed no PYTHONPATH), from
    # the same baseline; run through the same monai.bundle.run in this process (saves an interpreter start each)
    arm = {**overrides, **PRUNE, "max_rounds": 1}
    run_bundle_in_process(root, ["train.json", "prune.json", "control_finetune_only.json"], arm)
    hist = json.loads((root / "models" / "pruning_history.json").read_text())
    assert hist["selection"] == "none" and hist["pruned_channels"] == [] and len(hist["rounds"]) == 2
    run_bundle_in_process(root, ["train.json", "prune.json", "control_random_pruning.json"], arm)
    hist = json.loads((root / "models" / "pruning_history.json").read_text())
    assert hist["selection"] == "random" and len(hist["rounds"][1]["pruned"]) == 2
    run_bundle_in_process(root, ["train.json", "prune.json", "fairprune.json"], dict(arm, fairprune_iterations=2))
    hist = json.loads((root / "models" / "fairprune_history.json").read_text())
    assert 1 <= len(hist["iterations"]) <= 3 and hist["settings"]["bias_metric"].startswith("validation eodds_mean")
    assert not any(k.endswith("_mask") for k in torch.load(root / "models" / "model.pt", weights_only=True))

    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    assert (root / "eval" / "report.json").exists()
    saved = (root / "eval" / "metrics.csv").read_text()
    assert "test_auc" in saved and "val_" not in saved  # the test split's metrics are named test_*

    run_bundle_in_process(root, ["inference.json"], {"spatial_size": [32, 32], "dataset_dir": str(tmp_path / "data")})
    with open(root / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    n_test = len(json.loads((tmp_path / "data" / "datalist.json").read_text())["test"])
    assert len(rows) == n_test and {"case_id", "pred"} <= set(rows[0])


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("scp", {"finetune_optimizer": "adam", "finetune_lr": 1e-4, "finetune_epochs": 6, "finetune_lr_step": 3,
                 "finetune_sampler": "class_balanced", "n_per_round": None, "fraction_per_round": 0.015,
                 "fate_patience": 3}),
        ("short", {"finetune_optimizer": "sgd", "finetune_lr": 0.01, "finetune_epochs": 2, "finetune_lr_step": None,
                   "finetune_sampler": "shuffle", "n_per_round": 4, "fraction_per_round": None, "fate_patience": 1}),
    ],
)  # fmt: skip
def test_finetune_schedule_is_one_config_id(bundles_dir, schedule, expected):
    parser = ConfigParser()
    root = bundles_dir / "snnl_pruning_classification" / "configs"
    parser.read_config([str(root / "train.json"), str(root / "prune.json")])
    parser["finetune_schedule"] = schedule
    got = {k: parser.get_parsed_content(k) for k in expected}
    assert got == pytest.approx(expected)
    parser["finetune_lr"] = 0.5  # each value stays its own id
    assert parser.get_parsed_content("prune#optimizer").param_groups[0]["lr"] == 0.5


def test_stage_outputs_are_required(bundles_dir, tmp_path):
    """The pruning stage cannot start without the trained model, and no stage ends (exit 0) without its model."""
    from monai_fair.methods.snnl import load_baseline_weights
    from monai_fair.networks import SmallVGGNet

    net = SmallVGGNet(channels=(4, 8))
    with pytest.raises(FileNotFoundError, match="run the training stage"):
        load_baseline_weights(net, tmp_path / "baseline.pt")
    ref = SmallVGGNet(channels=(4, 8))
    torch.save({"model": ref.state_dict()}, tmp_path / "baseline.pt")  # a MONAI CheckpointSaver file
    load_baseline_weights(net, tmp_path / "baseline.pt")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))
    for stage, model in (("train.json", "@baseline_ckpt"), ("prune.json", "@pruned_ckpt")):
        run = json.loads((bundles_dir / "snnl_pruning_classification" / "configs" / stage).read_text())["run"]
        assert run[-1] == f"$monai_fair.data.require_model({model})"


def test_snnl_bundle_verify_net_in_out(bundle_copy):
    root = bundle_copy("snnl_pruning_classification")
    verify_net_in_out(root)
