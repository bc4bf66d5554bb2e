# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi teachers (:mod:`monai_fair.methods.fairdi.networks`): own-group routing, heads on a shared frozen backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_fair.methods.fairdi import (
    GroupTeachers,
    build_group_teachers,
)
from tests.methods.fairdi.fakes import ConstNet


def test_group_teachers_route_to_own_group():
    teachers = GroupTeachers(teachers=[ConstNet(k) for k in range(3)])
    x = torch.randn(6, 1, 3, 3)
    g = torch.tensor([2, 0, 1, 1, 2, 0])
    assert teachers(x, g)[:, 0].tolist() == [2.0, 0.0, 1.0, 1.0, 2.0, 0.0]
    assert teachers.all_outputs(x).shape == (3, 6, 2)
    # a group absent from the batch and a single-sample group
    assert teachers(x[:2], torch.tensor([2, 0]))[:, 0].tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match=r"out-of-range ids \[3\]"):
        teachers(x, torch.tensor([0, 1, 3, 0, 0, 0]))
    # one id for the whole batch (e.g. the windows of one image under a sliding-window inferer)
    assert teachers(x, torch.tensor([1]))[:, 0].tolist() == [1.0] * 6


def test_heads_on_shared_backbone_match_manual_computation():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.body = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    net.classifier = nn.Sequential()
    net.classifier.fc = nn.Linear(4, 2)  # a nested head (issue 13: heads mode failed unless top-level)
    teachers = build_group_teachers(net, 2, mode="heads", head_name="classifier.fc")
    net.eval()
    teachers.train()
    assert not teachers.backbone.training and teachers.heads[0].training  # frozen backbone keeps its BN statistics
    teachers.load_baseline(net.state_dict())  # heads and backbone from the network they came from
    torch.testing.assert_close(teachers.heads[1].weight, net.classifier.fc.weight)
    with torch.no_grad():
        teachers.heads[1].weight.add_(1.0)
    x = torch.randn(5, 5)
    g = torch.tensor([0, 1, 1, 0, 1])
    feats = net.body(x)
    manual = torch.stack([teachers.heads[int(k)](feats[i]) for i, k in enumerate(g)])
    torch.testing.assert_close(manual[0], net(x)[0])
    torch.testing.assert_close(teachers(x, g), manual)
    torch.testing.assert_close(teachers.all_outputs(x)[g, torch.arange(5)], manual)
    assert not any(p.requires_grad for p in teachers.backbone.parameters())
    with pytest.raises(ValueError, match="no module named 'fc'"):
        build_group_teachers(net, 2, mode="heads", head_name="fc")
