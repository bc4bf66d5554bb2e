# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``configs/multi_gpu_train.json`` of the remaining method bundles, run with torchrun on CPU (gloo, 2 processes).

Neural collapse: the NC handler runs on every rank over ``DistributedSampler`` shards of its loaders (its
accumulator all-reduces the moments) with the *unwrapped* network (``@network_def``, so the ``fc`` hook name
resolves); its last evaluation must equal a single-process evaluation of the saved ``models/model.pt``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_fair.data import ensure_synthetic_dataset

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp")]

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]

_NC_SINGLE = """
import json, sys, torch
from monai.bundle import ConfigParser
cfg = ConfigParser()
cfg.read_config(sys.argv[1])
cfg.update({"bundle_root": sys.argv[2], "datalist": sys.argv[3], "nc_dir": sys.argv[4], "epochs": 1})
net = cfg.get_parsed_content("network_def")
state = torch.load(sys.argv[2] + "/models/model.pt", map_location="cpu", weights_only=True)
net.load_state_dict(state.get("model", state), strict=True)
handler = cfg.get_parsed_content("nc#handler")
print(json.dumps(handler.evaluate(1)))
"""


def _copy_bundle(name: str, tmp_path: Path) -> Path:
    bundle = tmp_path / name
    shutil.copytree(REPO / "bundles" / name, bundle, ignore=shutil.ignore_patterns("models", "eval", "data", "runs"))
    return bundle


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
    bundle = _copy_bundle("neural_collapse_classification", tmp_path)
    datalist = ensure_synthetic_dataset(tmp_path / "data", task="classification", n_samples=64, image_size=32, seed=4)
    cfg = bundle / "configs"
    common = ["--bundle_root", str(bundle), "--datalist", datalist, "--epochs", "1", "--batch_size", "8",
              "--meta_file", str(cfg / "metadata.json"), "--logging_file", str(cfg / "logging.conf")]
    files = [str(cfg / "train.json"), str(cfg / "multi_gpu_train.json")]
    proc = subprocess.run(TORCHRUN + ["-m", "monai.bundle", "run", "--config_file", json.dumps(files)] + common,
                          capture_output=True, text=True, timeout=600, env=ENV, cwd=str(bundle))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    model = bundle / "models" / "model.pt"
    assert model.is_file()
    state = torch.load(model, map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state.get("model", state))  # saved unwrapped
    traj = json.loads((bundle / "eval" / "neural_collapse" / "nc_trajectory.json").read_text())
    ddp = traj["evaluations"][-1]
    assert ddp["epoch"] == 1

    proc = subprocess.run([sys.executable, "-c", _NC_SINGLE, str(cfg / "train.json"), str(bundle), datalist,
                           str(tmp_path / "nc_single")], capture_output=True, text=True, timeout=600, env=ENV,
                          cwd=str(bundle))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    single = json.loads(proc.stdout.strip().splitlines()[-1])
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
    from tests.integration.test_multi_gpu_bundles import _floats, _metrics, _point_estimates

    spec = FAIRDI[name]
    bundle = _copy_bundle(name, tmp_path)
    datalist = ensure_synthetic_dataset(tmp_path / "data", task=spec["task"], n_samples=64,
                                        image_size=spec["image_size"], seed=4)
    cfg = bundle / "configs"
    common = ["--bundle_root", str(bundle), "--datalist", datalist, "--batch_size", "8",
              "--baseline_epochs", "1", "--teacher_epochs", "1", "--student_epochs", "1",
              "--meta_file", str(cfg / "metadata.json"), "--logging_file", str(cfg / "logging.conf")]
    # stage 2 (teachers) single-process, without the baseline initialisation
    files = [str(cfg / "train.json"), str(cfg / "train_teachers.json")]
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)] + common
                          + ["--teacher_init_from_baseline", "False"],
                          capture_output=True, text=True, timeout=600, env=ENV, cwd=str(bundle))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert (bundle / "models" / "teachers.pt").is_file()

    (tmp_path / "ddp_outputs.json").write_text(json.dumps({
        "+validate#handlers": [
            {"_target_": "monai_fair.handlers.FairnessReportHandler", "output_dir": "$@output_dir + '/ddp'",
             "task": spec["task"], "group_names": "@group_names", "min_group_size": 1, "plots": False},
            {"_target_": "MetricsSaver", "save_dir": "$@output_dir + '/ddp'", "metrics": "*"},
        ]
    }))
    files = [str(cfg / "train.json"), str(cfg / "multi_gpu_train.json"), str(tmp_path / "ddp_outputs.json")]
    proc = subprocess.run(TORCHRUN + ["-m", "monai.bundle", "run", "--config_file", json.dumps(files)] + common,
                          capture_output=True, text=True, timeout=600, env=ENV, cwd=str(bundle))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert (bundle / "models" / "model.pt").is_file()

    files = [str(cfg / "train.json"), str(cfg / "evaluate.json")]
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)] + common
                          + ["--eval_split", "validation", "--min_group_size", "1",
                             "--output_dir", str(bundle / "eval" / "single")],
                          capture_output=True, text=True, timeout=600, env=ENV, cwd=str(bundle))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]

    ddp = json.loads((bundle / "eval" / "ddp" / "report.json").read_text())
    single = json.loads((bundle / "eval" / "single" / "report.json").read_text())
    n_val = len(json.loads(Path(datalist).read_text())["validation"])
    assert ddp["overall"]["n"] == single["overall"]["n"] == n_val
    a, b = _point_estimates(ddp), _point_estimates(single)
    assert a.keys() == b.keys()
    for part in a:
        np.testing.assert_allclose(list(_floats(a[part])), list(_floats(b[part])), atol=1e-5, equal_nan=True)
    m_ddp = _metrics(bundle / "eval" / "ddp" / "metrics.csv")
    m_single = _metrics(bundle / "eval" / "single" / "metrics.csv")
    assert spec["metric"] in set(m_ddp) & set(m_single), (m_ddp, m_single)
    for key in sorted(set(m_ddp) & set(m_single)):
        np.testing.assert_allclose(m_ddp[key], m_single[key], atol=1e-5, err_msg=key)
