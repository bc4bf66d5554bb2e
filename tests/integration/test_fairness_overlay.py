# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The fairness overlays on UNMODIFIED zoo-style bundles (tests/integration/fixtures), merged on the command line.

``python -m monai.bundle run --config_file "['configs/train.json','<overlay>.json']" --fair_datalist D`` trains the
standard bundle with group metrics; adding ``configs/evaluate.json`` evaluates the saved model and writes the
fairness report, whose per-group numbers are checked against an independent computation (MONAI Dice / sklearn AUC
on the same model and data).
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

from monai_fair.data import ensure_synthetic_dataset, load_fair_datalist

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
OVERLAYS = REPO / "bundles" / "overlays"


def run_overlay(bundle: Path, configs: list[str], overlay: str, overrides: dict) -> str:
    files = [str(bundle / "configs" / c) for c in configs] + [str(OVERLAYS / overlay)]
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        json.dumps(files),
        "--meta_file",
        str(bundle / "configs" / "metadata.json"),
        "--logging_file",
        str(bundle / "configs" / "logging.conf"),
        "--bundle_root",
        str(bundle),
    ]
    for k, v in overrides.items():
        cmd += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(bundle), env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def _parsed(bundle: Path, configs: list[str], overlay: str, overrides: dict):
    from monai.bundle import ConfigParser

    p = ConfigParser()
    p.read_config([str(bundle / "configs" / c) for c in configs] + [str(OVERLAYS / overlay)])
    p["bundle_root"] = str(bundle)
    for k, v in overrides.items():
        p[k] = v
    return p


def _predict(parser, items: list[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Run the bundle's own validation transforms and network (loaded from models/model.pt) on ``items``."""
    net = parser.get_parsed_content("network_def")
    ckpt = torch.load(Path(parser["bundle_root"]) / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(ckpt.get("model", ckpt))
    net.eval()
    pre = parser.get_parsed_content("validate#preprocessing")
    preds, labels = [], []
    with torch.no_grad():
        for it in items:
            d = pre(dict(it))
            preds.append(torch.softmax(net(torch.as_tensor(d["image"])[None].float())[0], 0))
            labels.append(torch.as_tensor(d["label"]))
    return preds, labels


def test_segmentation_overlay_on_zoo_bundle(tmp_path):
    datalist = ensure_synthetic_dataset(tmp_path / "data", task="segmentation", n_samples=40, image_size=32, seed=1)
    bundle = tmp_path / "zoo_segmentation"
    shutil.copytree(FIXTURES / "zoo_segmentation", bundle)
    ov = {"fair_datalist": str(datalist), "fair_min_group_size": 1, "train#trainer#max_epochs": 1}
    out = run_overlay(bundle, ["train.json"], "fairness_segmentation.json", ov)
    assert "validation_worst_group_dice" in out and "validation_dice_gap" in out
    assert (bundle / "models" / "model.pt").is_file()
    assert (bundle / "eval" / "fairness" / "report.json").is_file()  # written after the validation
    card = json.loads((bundle / "eval" / "fairness" / "fairness_card.json").read_text())  # and the fairness card
    assert card["task"] == "segmentation" and card["data"]["split"] == "validation"

    run_overlay(bundle, ["train.json", "evaluate.json"], "fairness_segmentation.json", ov)
    report = json.loads((bundle / "eval" / "fairness" / "report.json").read_text())
    items, names = load_fair_datalist(datalist, split="validation")
    parser = _parsed(bundle, ["train.json", "evaluate.json"], "fairness_segmentation.json", ov)
    preds, labels = _predict(parser, items)
    from monai.metrics import compute_dice

    dice = []
    for p, y in zip(preds, labels):
        pred = torch.nn.functional.one_hot(p.argmax(0), 2).permute(2, 0, 1)[None].float()
        lab = torch.nn.functional.one_hot(y[0].long(), 2).permute(2, 0, 1)[None].float()
        dice.append(float(compute_dice(pred, lab, include_background=False, ignore_empty=False)[0, 0]))
    dice = np.array(dice)
    group = np.array([it["group"] for it in items])
    assert report["overall"]["n"] == len(items)
    np.testing.assert_allclose(report["overall"]["dice"], dice.mean(), atol=1e-4)
    for g, name in enumerate(names):
        assert report["groups"][name]["n"] == int((group == g).sum())
        np.testing.assert_allclose(report["groups"][name]["dice"], dice[group == g].mean(), atol=1e-4)
    gap = max(dice[group == g].mean() for g in range(len(names))) - min(
        dice[group == g].mean() for g in range(len(names))
    )
    np.testing.assert_allclose(report["fairness"]["dice_gap"], gap, atol=1e-4)


def test_classification_overlay_on_zoo_bundle(tmp_path):
    from sklearn.metrics import roc_auc_score

    datalist = ensure_synthetic_dataset(
        tmp_path / "data", task="classification", n_samples=80, image_size=32, seed=2, file_format="nifti"
    )
    bundle = tmp_path / "zoo_classification"
    shutil.copytree(FIXTURES / "zoo_classification", bundle)
    ov = {
        "data_list_file_path": str(datalist),
        "dataset_dir": str(Path(datalist).parent),
        "train#trainer#max_epochs": 1,
    }
    cmd_out = run_overlay(
        bundle,
        ["train.json"],
        "fairness_classification.json",
        {**ov, "fair_datalist": str(datalist), "fair_min_group_size": 1},
    )
    assert "validation_worst_group_auc" in cmd_out and "validation_eodds" in cmd_out
    (bundle / "configs" / "evaluate.json").write_text(
        json.dumps(
            {
                "validate#handlers": [
                    {
                        "_target_": "CheckpointLoader",
                        "load_path": "$@ckpt_dir + '/model.pt'",
                        "load_dict": {"model": "@network"},
                    },
                    {"_target_": "StatsHandler", "iteration_log": False},
                ],
                "run": ["$@validate#evaluator.run()"],
            }
        )
    )
    ov2 = {**ov, "fair_datalist": str(datalist), "fair_min_group_size": 1, "fair_eval_split": "test"}
    out2 = run_overlay(bundle, ["train.json", "evaluate.json"], "fairness_classification.json", ov2)
    assert "test_worst_group_auc" in out2 and "validation_worst_group_auc" not in out2  # named by the split scored
    report = json.loads((bundle / "eval" / "fairness" / "report.json").read_text())
    items, names = load_fair_datalist(datalist, split="test")
    parser = _parsed(bundle, ["train.json", "evaluate.json"], "fairness_classification.json", ov2)
    preds, labels = _predict(parser, items)
    score = np.array([float(p[1]) for p in preds])
    y = np.array([int(torch.as_tensor(lab).reshape(-1)[0]) for lab in labels])
    group = np.array([it["group"] for it in items])
    assert report["overall"]["n"] == len(items)
    np.testing.assert_allclose(report["overall"]["auc"], roc_auc_score(y, score), atol=1e-4)
    for g, name in enumerate(names):
        m = group == g
        assert report["groups"][name]["n"] == int(m.sum())
        if len(set(y[m])) == 2:
            np.testing.assert_allclose(report["groups"][name]["auc"], roc_auc_score(y[m], score[m]), atol=1e-4)
