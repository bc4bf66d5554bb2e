# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""PredictionsWriter: the predictions.csv convention the report CLI reads (values checked by hand)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd, Compose

from monai_fair.handlers import PredictionsWriter


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_classification_csv(tmp_path):
    datalist = tmp_path / "datalist.json"
    datalist.write_text(
        json.dumps(
            {
                "training": [],
                "test": [],
                "group_names": ["F", "M"],
                "label_names": ["normal", "abnormal"],
                "metadata": {"c0": {"patient_id": "p0", "sex": "F"}, "c1": {"patient_id": "p1", "sex": "M"}},
            }
        )
    )
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    data = [
        {
            "case_id": f"c{i}",
            "image": MetaTensor(x[i], meta={"filename_or_obj": f"/img/c{i},x.png"}),
            "label": i % 2,
            "group": i % 2,
        }
        for i in range(3)
    ]
    net = torch.nn.Identity()
    writer = PredictionsWriter(tmp_path / "eval", datalist=datalist)
    ev = SupervisedEvaluator(
        device="cpu",
        val_data_loader=DataLoader(Dataset(data), batch_size=2),
        network=net,
        postprocessing=Compose([Activationsd("pred", softmax=True)]),
        val_handlers=[writer],
    )
    ev.run()
    rows = _rows(tmp_path / "eval/predictions.csv")
    assert list(rows[0]) == ["case_id", "image", "prob_normal", "prob_abnormal", "pred", "label", "group", "patient_id"]
    p = torch.softmax(x, 1).numpy()
    for i, r in enumerate(rows):
        assert r["case_id"] == f"c{i}" and r["image"] == f"/img/c{i},x.png"  # quoted comma survives
        np.testing.assert_allclose([float(r["prob_normal"]), float(r["prob_abnormal"])], p[i], atol=1e-6)
        assert int(r["pred"]) == int(p[i].argmax()) and int(r["label"]) == i % 2 and r["group"] == "FM"[i % 2]
    assert [r["patient_id"] for r in rows] == ["p0", "p1", ""]


def test_segmentation_csv(tmp_path):
    lab = np.zeros((1, 4, 4), np.float32)
    lab[0, :2, :2] = 1  # 4 foreground pixels
    pred_fg = np.zeros((4, 4), np.float32)
    pred_fg[:2, :] = 1  # 8 predicted, 4 of them right: Dice = 2*4/(8+4), IoU = 4/8
    logits = torch.as_tensor(np.stack([1 - pred_fg, pred_fg]))
    item = {
        "case_id": "v0",
        "image": MetaTensor(logits, meta={"filename_or_obj": "/d/v0.nii.gz"}),
        "label": MetaTensor(torch.as_tensor(lab), meta={"filename_or_obj": "/d/m0.nii.gz"}),
        "group": 1,
    }
    writer = PredictionsWriter(tmp_path, task="segmentation", group_names=["F", "M"], pred_mask_dir=tmp_path / "masks")
    ev = SupervisedEvaluator(
        device="cpu",
        val_data_loader=DataLoader(Dataset([item]), batch_size=1),
        network=torch.nn.Identity(),
        val_handlers=[writer],
    )
    ev.run()
    (row,) = _rows(tmp_path / "predictions.csv")
    assert list(row) == ["case_id", "image", "dice", "iou", "pred", "label", "group"]
    assert float(row["dice"]) == pytest.approx(8 / 12, abs=1e-6) and float(row["iou"]) == 0.5
    assert row["pred"] == str(tmp_path / "masks" / "v0_seg.nii.gz") and row["label"] == "/d/m0.nii.gz"
    assert row["group"] == "M"
