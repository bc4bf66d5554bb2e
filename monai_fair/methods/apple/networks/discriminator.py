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
import torch.nn.functional as F
from monai.utils import look_up_option
from torch import nn

__all__ = ["AttributeDiscriminator", "pool_latent"]

_POOLS = ("avg", "max", "avgmax")
_LATENT_TYPES = ("spatial", "token")


def pool_latent(f: torch.Tensor, kind: str = "spatial", pool: str = "avgmax") -> torch.Tensor:
    """Pool one latent to ``(B, C)`` (``"avg"``, ``"max"``) or ``(B, 2C)`` (``"avgmax"``: mean then max).

    Spatial latents ``(B, C, *spatial)`` are pooled over space (2D or 3D alike), token latents ``(B, N, C)`` over
    the tokens. Used by the discriminator and by the privacy probe (:mod:`.probe`), so both read the same features.
    """
    flat = f.transpose(1, 2) if kind == "token" else f.flatten(2)
    feats = []
    if pool in ("avg", "avgmax"):
        feats.append(flat.mean(-1))
    if pool in ("max", "avgmax"):
        feats.append(flat.amax(-1))
    return torch.cat(feats, dim=1)


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
        input_norm: standardise each pooled feature (batch normalisation without affine parameters: batch
            statistics in training mode, exponential running statistics (momentum 0.1, updated only by forward passes
            with gradients enabled, i.e. not by ``torch.no_grad`` monitoring) in eval mode and for a one-sample
            batch). Pooled latents can have large offsets and a small between-sample spread (SAM-like embeddings);
            without it the MLP learns them slowly.
        hidden_norm: batch normalisation (affine, same running-statistics rule) after each hidden ``Linear``: with
            two hidden layers this is APPLE's discriminator shape as reviews of the paper describe it (three
            Linear-BatchNorm blocks, the last with one output per attribute class), the ``paper`` preset of the
            bundle: ``AttributeDiscriminator(c, k, hidden_channels=(128, 64), hidden_norm=True)``.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_groups: int,
        latent_types: str | Sequence[str] = "spatial",
        hidden_channels: Sequence[int] = (128,),
        pool: str = "avgmax",
        dropout: float = 0.0,
        input_norm: bool = True,
        hidden_norm: bool = False,
    ) -> None:
        super().__init__()
        chans = [int(in_channels)] if isinstance(in_channels, int) else [int(c) for c in in_channels]
        types = [latent_types] * len(chans) if isinstance(latent_types, str) else list(latent_types)
        if len(types) != len(chans):
            raise ValueError(f"latent_types has {len(types)} entries for {len(chans)} latents.")
        types = [look_up_option(t, _LATENT_TYPES) for t in types]
        pool = look_up_option(pool, _POOLS)
        if int(num_groups) < 2:
            raise ValueError(f"num_groups must be >= 2, got {num_groups}.")
        self.in_channels, self.latent_types, self.pool, self.num_groups = chans, types, pool, int(num_groups)
        width = sum(chans) * (2 if pool == "avgmax" else 1)
        self.norm = _GradOnlyBatchNorm1d(width, affine=False) if input_norm else None
        layers: list[nn.Module] = []
        for h in hidden_channels:
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(width, int(h)))
            if hidden_norm:
                layers.append(_GradOnlyBatchNorm1d(int(h)))
            layers.append(nn.LeakyReLU(0.2))
            width = int(h)
        layers.append(nn.Linear(width, self.num_groups))
        self.mlp = nn.Sequential(*layers)

    def _pool(self, f: torch.Tensor, c: int, kind: str) -> torch.Tensor:
        if kind == "token" and (f.ndim != 3 or f.shape[-1] != c):
            raise ValueError(f"token latent must be (B, N, {c}), got {tuple(f.shape)}.")
        if kind == "spatial" and (f.ndim < 3 or f.shape[1] != c):
            raise ValueError(f"spatial latent must be (B, {c}, *spatial), got {tuple(f.shape)}.")
        return pool_latent(f, kind, self.pool)

    def forward(self, latents: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Return ``(B, num_groups)`` logits for one latent or a sequence of latents (in constructor order)."""
        if isinstance(latents, torch.Tensor):
            latents = [latents]
        if len(latents) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} latents, got {len(latents)}.")
        pooled = [self._pool(f, c, t) for f, c, t in zip(latents, self.in_channels, self.latent_types)]
        x = torch.cat(pooled, dim=1).float()
        if self.norm is not None:
            x = self.norm(x)
        return self.mlp(x)


class _GradOnlyBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` whose running statistics move only in forward passes with gradients enabled.

    Training mode with more than one sample: batch statistics (running ones updated only when ``torch.is_grad_enabled``,
    so ``torch.no_grad`` monitoring of the discriminator leaves them alone); eval mode or a one-sample batch: the
    running statistics (a plain ``BatchNorm1d`` raises on one training sample).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        if self.training and x.shape[0] > 1:
            track = torch.is_grad_enabled()
            mean, var = (self.running_mean, self.running_var) if track else (None, None)
            return F.batch_norm(x, mean, var, w, b, training=True, momentum=self.momentum, eps=self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, w, b, training=False, eps=self.eps)
