# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Tiny networks and in-memory items shared by the FairDi unit tests."""

from __future__ import annotations

import torch
from torch import nn


class ConstNet(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return self.value.expand(x.shape[0], 2) + 0 * x.reshape(x.shape[0], -1)[:, :2]


class RecorderNet(nn.Module):
    """Tiny linear classifier that records the sample ids (pixel [0, 0, 0]) it sees while training."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.seen: set[int] = set()

    def forward(self, x):
        if self.training:
            self.seen.update(int(v) for v in x[:, 0, 0, 0].round().tolist())
        return self.fc(x.reshape(x.shape[0], -1)[:, 1:5])


def make_items(n: int, group_of, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        img = torch.randn(1, 3, 3, generator=g)
        img[0, 0, 0] = float(i)
        items.append({"image": img, "label": torch.tensor(i % 2), "group": torch.tensor(group_of(i))})
    return items
