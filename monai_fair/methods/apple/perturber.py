# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE's residual latent perturber ``f_p = f_o + G_p(f_o)``.

Xu et al., "APPLE: Adversarial Privacy-aware Perturbations on Latent Embedding for Unfairness Mitigation"
(arXiv 2403.05114). A deployed segmentor ``D_s(E_s(x))`` stays frozen; a small generator ``G_p`` adds a
perturbation to the encoder's latent ``f_o = E_s(x)`` so that the frozen decoder sees ``f_p = f_o + G_p(f_o)``.

The architecture of ``G_p`` is not given in the paper (our choice, see the bundle README): shape-preserving
blocks whose **last layer is zero-initialised**, so that training starts exactly at ``f_p = f_o`` (the deployed
model's behaviour) and the perturbation grows only as far as the adversarial objective asks.

* spatial latents ``(B, C, *spatial)`` (U-Net bottlenecks, SAM image embeddings): ``num_blocks`` x
  (3x3 conv - norm - activation), then a zero-initialised 1x1 conv;
* token latents ``(B, N, C)`` (ViT / UNETR encoders): a per-token MLP
  (LayerNorm - Linear - GELU - zero-initialised Linear).
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.utils import look_up_option
from torch import nn

__all__ = ["LatentPerturber"]


class LatentPerturber(nn.Module):
    """Small residual generator ``G_p``: ``forward(f) = f + G_p(f)`` with ``G_p`` zero at initialisation.

    Args:
        channels: channels (spatial latents) or embedding size (token latents) of the latent.
        latent_type: ``"spatial"`` for ``(B, C, *spatial)`` or ``"token"`` for ``(B, N, C)``.
        spatial_dims: 2 or 3 (spatial latents only).
        hidden_channels: width of the hidden layers; the default ``None`` is ``channels``, so ``G_p`` can move the
            latent in every direction (a narrower hidden layer confines the perturbation to a subspace of that
            width, and the group stays readable from the rest).
        num_blocks: number of hidden conv blocks (spatial) or hidden layers (token), >= 1.
        norm: MONAI norm spec of the conv blocks; the default ``("group", {"num_groups": 1})`` works for any
            batch size and any latent size, including 1x1 bottlenecks.
        act: MONAI activation spec (``monai.networks.layers.utils.get_act_layer``).
        zero_init: zero-initialise the last layer (training starts at ``f_p = f_o``).

    Example::

        perturber = LatentPerturber(256, latent_type="spatial", spatial_dims=2)
        f_p = perturber(f_o)                  # f_o + G_p(f_o); equals f_o before training
        delta = perturber.perturbation(f_o)   # G_p(f_o)
    """

    def __init__(
        self,
        channels: int,
        latent_type: str = "spatial",
        spatial_dims: int = 2,
        hidden_channels: int | None = None,
        num_blocks: int = 2,
        norm: str | tuple = ("group", {"num_groups": 1}),
        act: str | tuple = "relu",
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        latent_type = look_up_option(latent_type, ("spatial", "token"))
        if int(channels) < 1 or int(num_blocks) < 1:
            raise ValueError(f"channels and num_blocks must be >= 1, got {channels} and {num_blocks}.")
        self.channels = int(channels)
        self.latent_type = latent_type
        self.spatial_dims = int(spatial_dims)
        hidden = int(hidden_channels or channels)
        layers: list[nn.Module] = []
        if latent_type == "spatial":
            conv = Conv[Conv.CONV, self.spatial_dims]
            c_in = self.channels
            for _ in range(int(num_blocks)):
                layers += [
                    conv(c_in, hidden, kernel_size=3, padding=1),
                    get_norm_layer(norm, self.spatial_dims, hidden),
                    get_act_layer(act),
                ]
                c_in = hidden
            last = conv(hidden, self.channels, kernel_size=1)
        else:
            layers.append(nn.LayerNorm(self.channels))
            c_in = self.channels
            for _ in range(int(num_blocks)):
                layers += [nn.Linear(c_in, hidden), nn.GELU()]
                c_in = hidden
            last = nn.Linear(hidden, self.channels)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def _check(self, f: torch.Tensor) -> None:
        if self.latent_type == "spatial":
            if f.ndim != self.spatial_dims + 2 or f.shape[1] != self.channels:
                raise ValueError(
                    f"LatentPerturber(spatial, channels={self.channels}, spatial_dims={self.spatial_dims}) got a "
                    f"latent of shape {tuple(f.shape)}; check latent_module / channels / latent_type."
                )
        elif f.ndim != 3 or f.shape[-1] != self.channels:
            raise ValueError(
                f"LatentPerturber(token, channels={self.channels}) expects (B, N, {self.channels}) latents, got "
                f"{tuple(f.shape)}; check latent_module / channels / latent_type."
            )

    def perturbation(self, f: torch.Tensor) -> torch.Tensor:
        """Return ``G_p(f)`` (same shape and dtype as ``f``)."""
        self._check(f)
        return self.net(f)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Return ``f + G_p(f)``."""
        return f + self.perturbation(f)
