# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end: the SNNL pruning bundle trains a baseline, prunes + fine-tunes, reports before/after, evaluates."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_bundle_cli, verify_net_in_out

TINY = {"synthetic": {"n_samples": 60, "image_size": 32, "seed": 1}, "epochs": 1, "batch_size": 16, "min_group_size": 1}
PRUNE = {
    "n_per_round": 2,
    "max_rounds": 2,
    "finetune_epochs": 1,
    "score_batch_size": 16,
    "keep_unpruned_if_best": False,
}


@pytest.mark.slow
def test_snnl_bundle_train_prune_evaluate(bundle_copy, tmp_path):
    root = bundle_copy("snnl_pruning_classification")
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"))
    run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "baseline.pt").exists()

    out = run_bundle_cli(root, ["train.json", "prune.json"], dict(overrides, **PRUNE))
    hist = json.loads((root / "models" / "pruning_history.json").read_text())
    assert hist["layer_name"] == "features.12" and hist["best_round"] >= 1
    assert len(hist["pruned_channels"]) == 2 * hist["best_round"]
    for part in ("before", "after"):
        report = json.loads((root / "eval" / part / "report.json").read_text())
        assert set(report) >= {"overall", "groups", "fairness"}
    # the saved model loads into the unpruned architecture and its pruned channels are exactly zero
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    w = state["features.12.weight"]
    assert torch.all(w[hist["pruned_channels"]] == 0) and torch.all(
        state["features.13.weight"][hist["pruned_channels"]] == 0
    )
    assert "SNNL pruning round 1" in out

    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides)
    assert (root / "eval" / "report.json").exists()


def test_snnl_bundle_verify_net_in_out(bundle_copy):
    root = bundle_copy("snnl_pruning_classification")
    verify_net_in_out(root)
