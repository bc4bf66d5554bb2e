# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group reweighting and GroupDRO losses against hand computations and a plain reference of Algorithm 1."""

from __future__ import annotations

import math

import pytest
import torch
from monai.losses import DiceLoss

from monai_fair.data import group_balance_weights, group_cell_counts
from monai_fair.engines import GroupAwareLoss
from monai_fair.losses import GroupDROLoss, GroupReweightedLoss, per_sample_loss


def _items(groups, labels):
    return [{"group": g, "label": y} for g, y in zip(groups, labels)]


def test_balance_weights_by_hand():
    # cells (g, y): (0,0) x1, (0,1) x3, (1,0) x4, (1,1) x0 -> K = 3 non-empty cells, N = 8
    data = _items([0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0, 0, 0])
    w = group_balance_weights(data, num_groups=2, num_classes=2)
    expect = torch.tensor([[8 / 3, 8 / 9], [8 / 12, 0.0]])
    torch.testing.assert_close(w, expect)
    torch.testing.assert_close(group_cell_counts(data, 2, 2), torch.tensor([[1.0, 3.0], [4.0, 0.0]]))
    per_item = torch.tensor([float(w[it["group"], it["label"]]) for it in data])
    assert math.isclose(float(per_item.mean()), 1.0, rel_tol=1e-6)  # mean weight 1 over the training set
    wg = group_balance_weights([{"group": g, "label": "m.nii"} for g in (0, 1, 1, 1)], by_label=False)
    torch.testing.assert_close(wg, torch.tensor([[2.0], [2 / 3]]))
    with pytest.raises(ValueError, match="integer class labels"):
        group_balance_weights([{"group": 0, "label": "m.nii"}])
    with pytest.raises(KeyError, match="'group'"):
        group_balance_weights([{"label": 1}])


def test_reweighted_loss_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(5, 2)
    y = torch.tensor([0, 1, 1, 0, 1])
    g = torch.tensor([0, 0, 1, 1, 1])
    table = torch.tensor([[2.0, 0.5], [1.0, 3.0]])
    loss = GroupReweightedLoss(torch.nn.CrossEntropyLoss(reduction="none"), table)
    ce = -torch.log_softmax(logits, 1)[torch.arange(5), y]
    w = torch.tensor([2.0, 0.5, 3.0, 1.0, 3.0])
    torch.testing.assert_close(loss(logits, y, g), (w * ce).sum() / w.sum())
    # equals torch's class-weighted CE when the weights depend on the label only
    table2 = torch.tensor([[0.3, 1.7], [0.3, 1.7]])
    ref = torch.nn.CrossEntropyLoss(weight=torch.tensor([0.3, 1.7]))(logits, y)
    torch.testing.assert_close(
        GroupReweightedLoss(torch.nn.CrossEntropyLoss(reduction="none"), table2)(logits, y, g), ref
    )
    with pytest.raises(ValueError, match="reduction='none'"):
        GroupReweightedLoss(torch.nn.CrossEntropyLoss(), table)(logits, y, g)
    with pytest.raises(ValueError, match="group ids"):
        loss(logits, y, torch.tensor([0, 0, 2, 1, 1]))


def test_reweighted_segmentation_loss_list_and_engine_adapter():
    torch.manual_seed(1)
    pred = torch.randn(3, 1, 8, 8)
    mask = (torch.rand(3, 1, 8, 8) > 0.6).float()
    g = torch.tensor([1, 0, 1])
    losses = [DiceLoss(sigmoid=True, reduction="none"), torch.nn.BCEWithLogitsLoss(reduction="none")]
    per = DiceLoss(sigmoid=True, reduction="none")(pred, mask).reshape(
        3
    ) + torch.nn.functional.binary_cross_entropy_with_logits(pred, mask, reduction="none").mean((1, 2, 3))
    torch.testing.assert_close(per_sample_loss(losses, pred, mask), per)
    loss = GroupReweightedLoss(losses, torch.tensor([4.0, 1.0]))
    w = torch.tensor([1.0, 4.0, 1.0])
    adapter = GroupAwareLoss(loss)
    adapter.bind(group=g)
    torch.testing.assert_close(adapter(pred, mask), (w * per).sum() / w.sum())


def _reference_dro(losses_per_step, eta, k):
    """Algorithm 1 of Sagawa et al. written out with Python lists: q update, then the objective."""
    q = [1.0 / k] * k
    objectives = []
    for group_losses in losses_per_step:
        q = [qi * math.exp(eta * li) for qi, li in zip(q, group_losses)]
        s = sum(q)
        q = [qi / s for qi in q]
        objectives.append(sum(qi * li for qi, li in zip(q, group_losses)))
    return q, objectives


def test_group_dro_matches_algorithm_1():
    torch.manual_seed(2)
    loss = GroupDROLoss(torch.nn.CrossEntropyLoss(reduction="none"), num_groups=2, num_classes=2, step_size=0.5)
    steps, per_step = [], []
    for _ in range(4):
        logits = torch.randn(8, 2)
        y = torch.tensor([0, 1, 0, 1, 0, 1, 1, 1])
        g = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
        ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        cell = g * 2 + y
        per_step.append([float(ce[cell == c].mean()) if (cell == c).any() else 0.0 for c in range(4)])
        steps.append(loss(logits, y, g))
    q_ref, obj_ref = _reference_dro(per_step, 0.5, 4)
    torch.testing.assert_close(loss.group_weights, torch.tensor(q_ref), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(torch.stack(steps), torch.tensor(obj_ref), atol=1e-6, rtol=1e-5)
    # the worst group gains weight; in eval mode q is frozen
    loss.eval()
    q_before = loss.group_weights.clone()
    loss(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long))
    torch.testing.assert_close(loss.group_weights, q_before)


def test_group_dro_absent_group_adjustment_and_gradient():
    loss = GroupDROLoss(
        torch.nn.CrossEntropyLoss(reduction="none"), num_groups=2, step_size=1.0, adjustment=2.0,
        group_counts=[4, 16],
    )  # fmt: skip
    logits = torch.zeros(3, 2, requires_grad=True)
    out = loss(logits, torch.tensor([0, 1, 0]), torch.tensor([1, 1, 1]))  # group 0 absent: L_0 = 0
    l1 = math.log(2.0)
    q = torch.tensor([0.5 * math.exp(0 + 2 / 2), 0.5 * math.exp(l1 + 2 / 4)])
    q = q / q.sum()
    torch.testing.assert_close(loss.group_weights, q)
    torch.testing.assert_close(out, q[1] * l1)
    out.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="group_counts"):
        GroupDROLoss(torch.nn.CrossEntropyLoss(reduction="none"), 2, adjustment=1.0)


def test_per_sample_dice_ce_equals_monai_dice_ce():
    from monai.losses import DiceCELoss, FocalLoss

    torch.manual_seed(3)
    x, y = torch.randn(4, 2, 8, 8), torch.randint(0, 2, (4, 1, 8, 8))
    terms = [
        DiceLoss(to_onehot_y=True, softmax=True, reduction="none"),
        FocalLoss(gamma=0.0, to_onehot_y=True, use_softmax=True, reduction="none"),
    ]
    per = per_sample_loss(terms, x, y, term_weights=[1.0, 2.0])
    torch.testing.assert_close(per.mean(), DiceCELoss(to_onehot_y=True, softmax=True)(x, y))
    # equal group weights: the reweighted loss is MONAI's DiceCE
    loss = GroupReweightedLoss(terms, torch.tensor([1.0, 1.0]), term_weights=[1.0, 2.0])
    torch.testing.assert_close(loss(x, y, torch.tensor([0, 1, 1, 0])), DiceCELoss(to_onehot_y=True, softmax=True)(x, y))
    with pytest.raises(ValueError, match="one factor per loss"):
        per_sample_loss(terms, x, y, term_weights=[1.0])
