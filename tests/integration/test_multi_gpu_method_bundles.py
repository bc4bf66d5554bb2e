# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``configs/multi_gpu_train.json`` of the remaining method bundles, run with torchrun on CPU (gloo, 2 processes).

Neural collapse: the NC handler runs on every rank over ``DistributedSampler`` shards of its loaders (its
accumulator all-reduces the moments) with the *unwrapped* network (``@network_def``, so the ``fc`` hook name
resolves); its last evaluation must equal a single-process evaluation of the saved ``models/model.pt``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
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

_NC_SINGLE = """
import json, sys, torch
from monai.bundle import ConfigParser
cfg = ConfigParser()
cfg.read_config(sys.argv[1])
cfg.update({"bundle_root": sys.argv[2], "datalist": sys.argv[3], "nc_dir": sys.argv[4]})
cfg.update({"epochs": 1, "min_group_size": 1})
net = cfg.get_parsed_content("network_def")
state = torch.load(sys.argv[2] + "/models/model.pt", map_location="cpu", weights_only=True)
net.load_state_dict(state.get("model", state), strict=True)
handler = cfg.get_parsed_content("nc#handler")
print(json.dumps(handler.evaluate(1)))
"""


def _nc_values(entry: dict) -> list[float]:
    out = []
    for split in ("train", "test"):
        for part in ("overall", "groups"):
            flat = json.dumps(entry[split][part], sort_keys=True)
            d = json.loads(flat)
            stack = [d]
            while stack:
                x = stack.pop()
                if isinstance(x, dict):
                    stack.extend(v for k, v in sorted(x.items()) if k not in ("f1", "accuracy"))
                elif isinstance(x, (int, float)) or x is None:
                    out.append(float("nan") if x is None else float(x))
    return out


def test_neural_collapse_ddp_matches_single_process(tmp_path):
    bundle = copy_bundle("neural_collapse_classification", tmp_path)
    datalist = ensure_synthetic_dataset(tmp_path / "data", task="classification", n_samples=64, image_size=32, seed=4)
    cfg = bundle / "configs"
    common = [
        "--bundle_root",
        str(bundle),
        "--datalist",
        datalist,
        "--epochs",
        "1",
        "--batch_size",
        "8",
        "--min_group_size",  # every group shown: the DDP counts are compared with the single-process ones
        "1",
        "--meta_file",
        str(cfg / "metadata.json"),
        "--logging_file",
        str(cfg / "logging.conf"),
    ]
    bundle_run([cfg / "train.json", cfg / "multi_gpu_train.json"], common, bundle, distributed=True)
    model = bundle / "models" / "model.pt"
    assert model.is_file()
    state = torch.load(model, map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state.get("model", state))  # saved unwrapped
    traj = json.loads((bundle / "eval" / "neural_collapse" / "nc_trajectory.json").read_text())
    ddp = traj["evaluations"][-1]
    assert ddp["epoch"] == 1

    out = run(
        [sys.executable, "-c", _NC_SINGLE, str(cfg / "train.json"), str(bundle), datalist, str(tmp_path / "nc_single")],
        bundle,
    )
    single = json.loads(out.strip().splitlines()[-1])
    n_train = len(json.loads(Path(datalist).read_text())["training"])
    # every training sample counted once (the shards were all-reduced, none duplicated)
    assert sum(sum(v) if isinstance(v, list) else v for v in ddp["train"]["counts"].values()) == n_train
    assert ddp["train"]["counts"] == single["train"]["counts"]
    a, b = _nc_values(ddp), _nc_values(single)
    assert len(a) == len(b) > 4
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)


# FairDi: the baseline/teacher stages run single-process (teacher training is a Python loop over groups, not an
# Ignite engine); the student stage runs with DDP and loads models/teachers.pt.
FAIRDI = {
    "fairdi_classification": {"task": "classification", "image_size": 32, "metric": "val_auc"},
    "fairdi_segmentation": {"task": "segmentation", "image_size": 32, "metric": "val_mean_dice"},
}


@pytest.mark.parametrize("name", sorted(FAIRDI))
def test_fairdi_student_ddp_matches_single_process(name, tmp_path):
    spec = FAIRDI[name]
    bundle = copy_bundle(name, tmp_path)
    datalist = ensure_synthetic_dataset(
        tmp_path / "data", task=spec["task"], n_samples=64, image_size=spec["image_size"], seed=4
    )
    cfg = bundle / "configs"
    common = [
        "--bundle_root",
        str(bundle),
        "--datalist",
        datalist,
        "--min_group_size",  # every group shown: the DDP figures are compared with the single-process ones
        "1",
        "--batch_size",
        "8",
        "--baseline_epochs",
        "1",
        "--teacher_epochs",
        "1",
        "--student_epochs",
        "1",
        "--meta_file",
        str(cfg / "metadata.json"),
        "--logging_file",
        str(cfg / "logging.conf"),
    ]
    # stage 2 (teachers) single-process, without the baseline initialisation
    bundle_run(
        [cfg / "train.json", cfg / "train_teachers.json"], common + ["--teacher_init_from_baseline", "False"], bundle
    )
    assert (bundle / "models" / "teachers.pt").is_file()

    outputs = write_ddp_outputs(tmp_path / "ddp_outputs.json", "validate#handlers", spec["task"])
    bundle_run([cfg / "train.json", cfg / "multi_gpu_train.json", outputs], common, bundle, distributed=True)
    assert (bundle / "models" / "model.pt").is_file()

    bundle_run(
        [cfg / "train.json", cfg / "evaluate.json"],
        common
        + ["--eval_split", "validation", "--min_group_size", "1", "--output_dir", str(bundle / "eval" / "single")],
        bundle,
    )
    n_val = len(json.loads(Path(datalist).read_text())["validation"])
    assert_ddp_matches_single(bundle / "eval" / "ddp", bundle / "eval" / "single", n_val, {spec["metric"]})
