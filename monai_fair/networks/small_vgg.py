# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""A small VGG-style CNN (``Conv -> BN -> ReLU [-> MaxPool]`` blocks, global pooling, linear head).

SCP (Kong et al., MICCAI 2024) prunes the last conv of a VGG-11; this is a small, N-D version of that
architecture built from MONAI's layer factories, so channel pruning (masking and physical removal,
:mod:`monai_fair.methods.snnl.pruning`) applies to every conv. Module names follow torchvision's VGG:
``features.<i>`` for the layers of the feature extractor and ``classifier.<i>`` for the head; the ``j``-th conv
(0-based) is ``features.<4*j>`` when every block pools (``features.<4j>`` conv, ``<4j+1>`` BN, ``<4j+2>`` ReLU,
``<4j+3>`` pool).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv, Norm, Pool
from torch import nn

__all__ = ["SmallVGGNet"]


class SmallVGGNet(nn.Module):
    """VGG-like classifier: ``len(channels)`` conv blocks, adaptive average pooling, flatten, dropout, linear.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels.
        num_classes: output logits.
        channels: output channels of each conv block.
        pool_every: a max-pool (2) after every block (True) or none.
        dropout: dropout before the linear layer.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        num_classes: int = 2,
        channels: Sequence[int] = (16, 32, 64, 64),
        pool_every: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        conv_t, norm_t = Conv[Conv.CONV, spatial_dims], Norm[Norm.BATCH, spatial_dims]
        pool_t, gap_t = Pool[Pool.MAX, spatial_dims], Pool[Pool.ADAPTIVEAVG, spatial_dims]
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in channels:
            layers += [conv_t(c_in, c, kernel_size=3, padding=1), norm_t(c), nn.ReLU(inplace=False)]
            if pool_every:
                layers.append(pool_t(2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.pool = gap_t(1)
        self.classifier = nn.Sequential(nn.Flatten(1), nn.Dropout(dropout), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))
