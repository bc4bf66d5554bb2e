# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE's sensitive-attribute discriminator ``D_p``: pooled latent(s) -> MLP -> K group logits.

Xu et al., APPLE (arXiv 2403.05114): ``D_p`` predicts the protected attribute ``a`` from the perturbed latent
``f_p``; it is trained with ``CE(D_p(f_p), a)`` while the perturber tries to make its prediction uninformative.
The same module, freshly initialised and trained on frozen latents, is the privacy *probe* of the benchmarks
(how well the group can still be recovered from the latent).

Several latents (e.g. the bottleneck and the skip connections of a U-Net) are pooled separately and their
pooled vectors concatenated, so one discriminator watches every perturbed site.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AttributeDiscriminator"]


class AttributeDiscriminator(nn.Module):
    """Global pooling of each latent, concatenation, then an MLP to ``num_groups`` logits.

    Spatial latents ``(B, C, *spatial)`` are pooled over space; token latents ``(B, N, C)`` (``latent_types``
    entry ``"token"``) over tokens. ``pool="avgmax"`` concatenates mean and max pooling (2C features per latent).

    Args:
        in_channels: channels of the latent, or one entry per latent when several are watched.
        num_groups: K, the number of groups (>= 2).
        latent_types: ``"spatial"`` / ``"token"``, one value or one per latent.
        hidden_channels: widths of the hidden layers of the MLP.
        pool: ``"avg"``, ``"max"`` or ``"avgmax"``.
        dropout: dropout probability before each hidden layer.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_groups: int,
        latent_types: str | Sequence[str] = "spatial",
        hidden_channels: Sequence[int] = (128,),
        pool: str = "avgmax",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        chans = [int(in_channels)] if isinstance(in_channels, int) else [int(c) for c in in_channels]
        types = [latent_types] * len(chans) if isinstance(latent_types, str) else list(latent_types)
        if len(types) != len(chans):
            raise ValueError(f"latent_types has {len(types)} entries for {len(chans)} latents.")
        if any(t not in ("spatial", "token") for t in types):
            raise ValueError(f"latent_types entries must be 'spatial' or 'token', got {types}.")
        if pool not in ("avg", "max", "avgmax"):
            raise ValueError(f"pool must be 'avg', 'max' or 'avgmax', got {pool!r}.")
        if int(num_groups) < 2:
            raise ValueError(f"num_groups must be >= 2, got {num_groups}.")
        self.in_channels, self.latent_types, self.pool, self.num_groups = chans, types, pool, int(num_groups)
        width = sum(chans) * (2 if pool == "avgmax" else 1)
        layers: list[nn.Module] = []
        for h in hidden_channels:
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(width, int(h)), nn.LeakyReLU(0.2)]
            width = int(h)
        layers.append(nn.Linear(width, self.num_groups))
        self.mlp = nn.Sequential(*layers)

    def _pool(self, f: torch.Tensor, c: int, kind: str) -> torch.Tensor:
        if kind == "token":
            if f.ndim != 3 or f.shape[-1] != c:
                raise ValueError(f"token latent must be (B, N, {c}), got {tuple(f.shape)}.")
            flat = f.transpose(1, 2)
        else:
            if f.ndim < 3 or f.shape[1] != c:
                raise ValueError(f"spatial latent must be (B, {c}, *spatial), got {tuple(f.shape)}.")
            flat = f.flatten(2)
        feats = []
        if self.pool in ("avg", "avgmax"):
            feats.append(flat.mean(-1))
        if self.pool in ("max", "avgmax"):
            feats.append(flat.amax(-1))
        return torch.cat(feats, dim=1)

    def forward(self, latents: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Return ``(B, num_groups)`` logits for one latent or a sequence of latents (in constructor order)."""
        if isinstance(latents, torch.Tensor):
            latents = [latents]
        if len(latents) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} latents, got {len(latents)}.")
        pooled = [self._pool(f, c, t) for f, c, t in zip(latents, self.in_channels, self.latent_types)]
        return self.mlp(torch.cat(pooled, dim=1).float())
