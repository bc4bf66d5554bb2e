# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pytest
import torch

from monai_fair.metrics import (
    FairnessMetricWarning,
    GroupSegmentationMetric,
    compute_group_segmentation_metrics,
    compute_per_image_dice_iou,
)


def test_hand_computed_three_groups():
    dice = [0.9, 0.7, 0.6, 0.8, 0.5, 0.3]
    iou = [0.8, 0.6, 0.5, 0.7, 0.4, 0.2]
    g = [0, 0, 1, 1, 2, 2]
    r = compute_group_segmentation_metrics(dice, iou, g)
    means = [0.8, 0.7, 0.4]
    assert [r["groups"][k]["dice"] for k in range(3)] == pytest.approx(means)
    m_all = float(np.mean(dice))
    f = r["fairness"]
    assert r["overall"]["dice"] == pytest.approx(m_all)
    assert f["dice_gap"] == pytest.approx(0.4)
    assert f["iou_gap"] == pytest.approx(0.4)
    assert f["worst_group_dice"] == pytest.approx(0.4)
    assert f["es_dice"] == pytest.approx(m_all / (1 + sum(abs(m_all - m) for m in means)))
    assert f["es_dice_fairseg"] == f["es_dice"]
    assert f["es_dice_fairseg_std"] == pytest.approx(m_all / (1 + statistics.stdev(means)))
    assert f["es_dice_fairmedfm"] == pytest.approx(statistics.mean(means) / (1 + statistics.pstdev(means)))
    assert f["ser"] == pytest.approx((1 - 0.4) / (1 - 0.8))
    r2 = compute_group_segmentation_metrics(dice, iou, g, es_variant="fairmedfm")
    assert r2["fairness"]["es_dice"] == pytest.approx(f["es_dice_fairmedfm"])


def test_min_group_size_excludes_from_aggregates():
    # group 2 (n=1) is suppressed; secondary suppression also hides the smallest other group (group 0, n=2, lower id
    # on a tie), else overall - groups 0 and 1 would give group 2 exactly; the aggregates use groups 1 and 3
    dice = [0.9, 0.7, 0.6, 0.8, 0.1, 0.5, 0.5, 0.5]
    g = [0, 0, 1, 1, 2, 3, 3, 3]
    r = compute_group_segmentation_metrics(dice, dice, g, min_group_size=2)
    assert sorted(r["groups"]) == [1, 3] and r["suppression"]["suppressed_groups"] == 2
    assert r["fairness"]["dice_gap"] == pytest.approx(0.2)
    assert r["fairness"]["worst_group_dice"] == pytest.approx(0.5)
    # three groups with one suppressed: one group is left, so no group-level figure (NaN with its reason)
    r3 = compute_group_segmentation_metrics(dice[:5], dice[:5], g[:5], min_group_size=2)
    assert list(r3["groups"]) == [1] and math.isnan(r3["fairness"]["dice_gap"])
    assert r3["fairness_nan_reason"]["worst_group_dice"] == "fewer_than_2_reported_groups"


def test_undefined_cases():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = compute_group_segmentation_metrics([0.5, float("nan"), 0.7, 1.0], None, [0, 1, 1, 2], num_groups=4)
    msgs = " ".join(str(x.message) for x in w if issubclass(x.category, FairnessMetricWarning))
    assert "group 1" in msgs and "group 3 is empty" in msgs
    assert math.isnan(r["groups"][1]["dice"]) and math.isnan(r["groups"][3]["dice"])
    assert math.isnan(r["overall"]["dice"]) and math.isnan(r["fairness"]["es_dice"])
    assert r["fairness"]["dice_gap"] == pytest.approx(0.5)  # over the defined groups 0 and 2
    assert math.isnan(r["fairness"]["ser"])  # the best group is perfect
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = compute_group_segmentation_metrics([0.5, float("nan"), 0.7], None, [0, 1, 1], nan_policy="omit")
    assert r2["groups"][1]["dice"] == pytest.approx(0.7) and r2["overall"]["n"] == 2


def test_bootstrap_seeded():
    rng = np.random.default_rng(0)
    d = rng.random(60)
    g = rng.integers(0, 3, 60)
    a = compute_group_segmentation_metrics(d, d, g, n_bootstrap=64, seed=1)
    b = compute_group_segmentation_metrics(d, d, g, n_bootstrap=64, seed=1)
    assert a["fairness_ci"] == b["fairness_ci"]
    lo, hi = a["groups"][0]["ci"]["dice"]
    assert lo <= a["groups"][0]["dice"] <= hi


def _masks():
    pred = torch.zeros(4, 2, 8, 8)
    pred[:, 1, :4] = 1  # 32 foreground pixels
    pred[:, 0] = 1 - pred[:, 1]
    lab = torch.zeros(4, 1, 8, 8)
    lab[:2, 0, :6] = 1  # 48 pixels, overlap 32
    lab[2:, 0, :2] = 1  # 16 pixels, overlap 16
    return pred, lab


def test_per_image_dice_iou_hand_values():
    pred, lab = _masks()
    d, i = compute_per_image_dice_iou(pred, lab)
    assert d.tolist() == pytest.approx([64 / 80, 64 / 80, 32 / 48, 32 / 48])
    assert i.tolist() == pytest.approx([32 / 48, 32 / 48, 16 / 32, 16 / 32])
    d1, _ = compute_per_image_dice_iou(pred[:, 1:], lab)  # single foreground channel
    assert d1.tolist() == pytest.approx(d.tolist())


def test_metric_class_batches_and_lists():
    pred, lab = _masks()
    group = torch.tensor([0, 1, 0, 1])
    m = GroupSegmentationMetric(num_groups=2)
    m(pred[:2], lab[:2], group=group[:2])
    m([p for p in pred[2:]], [x for x in lab[2:]], group=[x for x in group[2:]])
    got = m.aggregate()
    d, i = compute_per_image_dice_iou(pred, lab)
    ref = compute_group_segmentation_metrics(d, i, group)
    assert got["fairness"] == pytest.approx(ref["fairness"], nan_ok=True)
    s = GroupSegmentationMetric(reduction="es_dice")
    s(pred, lab, group=group)
    assert float(s.aggregate()) == pytest.approx(ref["fairness"]["es_dice"])


def test_stratified_bootstrap_group_ci():
    rng = np.random.default_rng(0)
    d = rng.random(60)
    g = np.repeat([0, 1, 2], 20)
    d[g == 2] = 0.5  # constant group: with group sizes fixed its mean never changes
    a = compute_group_segmentation_metrics(d, d, g, n_bootstrap=64, seed=1, stratified_bootstrap=True)
    assert a["groups"][2]["ci"]["dice"] == [pytest.approx(0.5), pytest.approx(0.5)]
    lo, hi = a["groups"][0]["ci"]["dice"]
    assert lo < a["groups"][0]["dice"] < hi
