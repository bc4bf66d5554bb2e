# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``bundles/apple_segmentation/configs/multi_gpu_train.json`` run with torchrun on CPU (gloo, 2 processes).

Both stages train data-parallel: the deployed segmentor with a DDP network, then the perturber and the
discriminator with ``AppleTrainer(distributed=True)`` (gradients averaged over the ranks, the frozen base never
wrapped). Checks: the checkpoints keep single-device keys and load into the single-process ``evaluate.json`` and
``inference.json``; the deployed weights inside ``model.pt`` are bit-identical to ``base_model.pt``; the DDP
validation's fairness report and metrics equal a single-process evaluation of ``model.pt`` on the same data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from monai_fair.data import ensure_synthetic_dataset
from tests.integration.ddp_utils import (
    assert_ddp_matches_single,
    bundle_run,
    copy_bundle,
    run,
    write_ddp_outputs,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp")]


_INFERENCE_NET = """
import sys, torch
from monai.bundle import ConfigParser
cfg = ConfigParser()
cfg.read_config(sys.argv[1])
cfg.update({"bundle_root": sys.argv[2]})
net = cfg.get_parsed_content("network_def")  # loads base_model.pt and perturber.pt (strict)
state = torch.load(sys.argv[2] + "/models/model.pt", map_location="cpu", weights_only=True)
net.load_state_dict(state.get("model", state), strict=True)
print("LOADED", len(net.perturbers))
"""


def test_apple_ddp_matches_single_process(tmp_path):
    bundle = copy_bundle("apple_segmentation", tmp_path)
    datalist = ensure_synthetic_dataset(tmp_path / "data", task="segmentation", n_samples=48, image_size=32, seed=4)
    cfg = bundle / "configs"
    outputs = write_ddp_outputs(tmp_path / "ddp_outputs.json", "validate#handlers", "segmentation")
    common = [
        "--bundle_root",
        str(bundle),
        "--datalist",
        datalist,
        "--min_group_size",  # every group shown: the DDP figures are compared with the single-process ones
        "1",
        "--batch_size",
        "8",
        "--base_epochs",
        "1",
        "--apple_epochs",
        "1",
        "--meta_file",
        str(cfg / "metadata.json"),
        "--logging_file",
        str(cfg / "logging.conf"),
    ]
    bundle_run([cfg / "train.json", cfg / "multi_gpu_train.json", outputs], common, bundle, distributed=True)

    models = bundle / "models"
    base = torch.load(models / "base_model.pt", map_location="cpu", weights_only=True)
    whole = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    pert = torch.load(models / "perturber.pt", map_location="cpu", weights_only=True)
    base, whole, pert = (s.get("model", s) for s in (base, whole, pert))
    for state in (base, whole, pert):
        assert state and not any(k.startswith("module.") or ".module." in k for k in state), list(state)[:5]
    # the deployed segmentor inside the APPLE model is bit-identical to the stage-1 checkpoint
    inner = {k[len("network.") :]: v for k, v in whole.items() if k.startswith("network.")}
    assert inner.keys() == base.keys()
    for k in base:
        assert torch.equal(inner[k], base[k]), k
    # the perturber moved away from its zero-initialised last layer (it was trained), consistently in both files
    assert {k[len("perturbers.") :] for k in whole if k.startswith("perturbers.")} == set(pert)
    for k, v in pert.items():
        assert torch.equal(whole["perturbers." + k], v), k
    assert any(v.abs().sum() > 0 for k, v in pert.items() if v.is_floating_point()), "perturber untrained"

    # the single-process inference config builds the wrapper and loads the checkpoints strictly
    out = run([sys.executable, "-c", _INFERENCE_NET, str(cfg / "inference.json"), str(bundle)], bundle)
    assert "LOADED 1" in out

    # single process: evaluate.json on the validation split, with the training evaluator's metrics
    (tmp_path / "single_metrics.json").write_text(
        json.dumps(
            {
                "evaluate#after#key_val_metric": "%validate#evaluator#key_val_metric",
                "evaluate#after#additional_metrics": "%validate#evaluator#additional_metrics",
                "+evaluate#after#val_handlers": [
                    {"_target_": "MetricsSaver", "save_dir": "$@output_dir + '/after'", "metrics": "*"}
                ],
            }
        )
    )
    bundle_run(
        [cfg / "train.json", cfg / "evaluate.json", tmp_path / "single_metrics.json"],
        common
        + ["--evaluate#split", "validation", "--min_group_size", "1", "--output_dir", str(bundle / "eval" / "single")]
        + ["--probe_bootstrap", "20"],
        bundle,
    )
    n_val = len(json.loads(Path(datalist).read_text())["validation"])
    assert_ddp_matches_single(
        bundle / "eval" / "ddp",
        bundle / "eval" / "single" / "after",
        n_val,
        {"val_apple_key_metric", "val_mean_dice", "val_worst_group_dice"},
    )
