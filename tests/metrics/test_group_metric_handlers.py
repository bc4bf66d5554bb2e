# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_fair.handlers import (
    FairnessReportHandler,
    GroupClassificationMetricHandler,
    GroupSegmentationMetricHandler,
)
from monai_fair.metrics import (
    compute_group_classification_metrics,
    compute_group_segmentation_metrics,
    compute_per_image_dice_iou,
)


def _cls_batches(n_batches=4, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, 2, (bs,), generator=g)
        grp = torch.randint(0, 2, (bs,), generator=g)
        p1 = (torch.rand(bs, generator=g) * 0.7 + 0.3 * y).clamp(0, 1)
        out.append({"pred": torch.stack([1 - p1, p1], 1), "label": y, "group": grp})
    return out


def _engine():
    return Engine(lambda engine, batch: batch)


def test_classification_handler_key_metric_and_dict():
    data = _cls_batches()
    eng = _engine()
    GroupClassificationMetricHandler(reduction="worst_group_auc").attach(eng, "wg_auc")
    GroupClassificationMetricHandler(reduction=None, save_details=True).attach(eng, "fair")
    eng.run(data)
    p = torch.cat([b["pred"] for b in data])
    y = torch.cat([b["label"] for b in data])
    g = torch.cat([b["group"] for b in data])
    ref = compute_group_classification_metrics(p, y, g)
    assert eng.state.metrics["wg_auc"] == pytest.approx(ref["fairness"]["worst_group_auc"])
    assert eng.state.metrics["fair"]["fairness"]["es_auc"] == pytest.approx(ref["fairness"]["es_auc"])
    assert len(eng.state.metric_details["fair"][0]) == 64


def test_handler_requires_group():
    eng = _engine()
    GroupClassificationMetricHandler(output_transform=lambda o: (o["pred"], o["label"])).attach(eng, "x")
    with pytest.raises(ValueError, match="group"):
        eng.run(_cls_batches(1))


def _seg_batches():
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(3):
        lab = (torch.rand(4, 1, 8, 8, generator=g) > 0.5).float()
        fg = (torch.rand(4, 1, 8, 8, generator=g) > 0.4).float()
        out.append({"pred": torch.cat([1 - fg, fg], 1), "label": lab, "group": torch.tensor([0, 1, 2, 1])})
    return out


def test_segmentation_handler_and_report_handler(tmp_path):
    data = _seg_batches()
    eng = _engine()
    GroupSegmentationMetricHandler(reduction="es_dice").attach(eng, "es_dice")
    rep = FairnessReportHandler(tmp_path / "rep", "segmentation", ["a", "b", "c"], min_group_size=4, n_bootstrap=20)
    rep.attach(eng)
    eng.run(data)
    d, i = compute_per_image_dice_iou(torch.cat([b["pred"] for b in data]), torch.cat([b["label"] for b in data]))
    g = torch.cat([b["group"] for b in data])
    ref = compute_group_segmentation_metrics(d, i, g)
    assert eng.state.metrics["es_dice"] == pytest.approx(ref["fairness"]["es_dice"])
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(report["groups"]) == {"b"}  # a and c have 3 images < 4: suppressed
    assert report["fairness"]["suppressed_groups"] == 2
    assert report["groups"]["b"]["dice"] == pytest.approx(ref["groups"][1]["dice"])
    assert eng.state.fairness_report["overall"]["n"] == 12


def test_classification_report_handler(tmp_path):
    data = _cls_batches()
    eng = _engine()
    FairnessReportHandler(tmp_path, "classification", ["F", "M"], n_bootstrap=0).attach(eng)
    eng.run(data, max_epochs=1)
    report = json.loads((tmp_path / "report.json").read_text())
    p = torch.cat([b["pred"] for b in data])
    y = torch.cat([b["label"] for b in data])
    g = torch.cat([b["group"] for b in data])
    ref = compute_group_classification_metrics(p, y, g)
    assert report["groups"]["M"]["auc"] == pytest.approx(ref["groups"][1]["auc"])
    assert report["fairness"]["eodds"] == pytest.approx(ref["fairness"]["eodds"])
    assert (tmp_path / "roc_curves.png").stat().st_size > 1000
    eng.run(data[:2], max_epochs=1)  # second run resets the buffers
    assert json.loads((tmp_path / "report.json").read_text())["overall"]["n"] == 32
    assert np.isfinite(report["fairness"]["es_auc"])


def test_with_group_supervised_evaluator_decollated(tmp_path):
    from monai.data import DataLoader
    from monai.transforms import Activationsd

    from monai_fair.engines import GroupSupervisedEvaluator

    torch.manual_seed(0)
    items = [
        {"image": torch.randn(4) + (i % 2), "label": torch.tensor(i % 2), "group": torch.tensor((i // 2) % 2)}
        for i in range(48)
    ]
    net = torch.nn.Linear(4, 2)
    handler = GroupClassificationMetricHandler(reduction="worst_group_auc")
    report = FairnessReportHandler(tmp_path, "classification", ["A", "B"], n_bootstrap=0, plots=False)
    ev = GroupSupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(items, batch_size=16),
        network=net,
        postprocessing=Activationsd(keys="pred", softmax=True),
        key_val_metric={"wg_auc": handler},
        val_handlers=[report],
    )
    ev.run()
    with torch.no_grad():
        x = torch.stack([d["image"] for d in items])
        p = torch.softmax(net(x), 1)
    y = torch.stack([d["label"] for d in items])
    g = torch.stack([d["group"] for d in items])
    ref = compute_group_classification_metrics(p, y, g)
    assert ev.state.metrics["wg_auc"] == pytest.approx(ref["fairness"]["worst_group_auc"])
    js = json.loads((tmp_path / "report.json").read_text())
    assert js["groups"]["B"]["auc"] == pytest.approx(ref["groups"][1]["auc"])


def test_handler_cluster_key_gives_cluster_bootstrap():
    data = _cls_batches()
    for i, b in enumerate(data):
        b["patient"] = torch.arange(16) // 2 + 8 * i  # two images per patient
    eng = _engine()
    GroupClassificationMetricHandler(reduction=None, n_bootstrap=30, cluster_key="patient").attach(eng, "fair")
    eng.run(data)
    res = eng.state.metrics["fair"]
    assert res["ci_method"]["accuracy"] == "percentile bootstrap, cluster, B=30"
    assert res["ci_method"]["auc"] == "DeLong, cluster-robust"
    p = torch.cat([b["pred"] for b in data])
    y = torch.cat([b["label"] for b in data])
    g = torch.cat([b["group"] for b in data])
    pid = torch.cat([b["patient"] for b in data])
    ref = compute_group_classification_metrics(p, y, g, n_bootstrap=30, cluster=pid)
    assert res["fairness_ci"]["accuracy_gap"] == pytest.approx(ref["fairness_ci"]["accuracy_gap"])
