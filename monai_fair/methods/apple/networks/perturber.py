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

:class:`EncoderDecoderPerturber` is the generator's shape as reviews of the paper describe it (the bundle's
``paper`` preset): a small encoder-decoder, three encoder layers of 32, 64 and 128 channels, four bottleneck
layers, a three-layer decoder whose last layer has the latent's channels, with the same residual output and
zero-initialised last layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from monai.utils import look_up_option
from torch import nn

__all__ = ["LatentPerturber", "EncoderDecoderPerturber"]


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


class _ConvBlock(nn.Sequential):
    """3x3 convolution (stride ``s``), norm, activation."""

    def __init__(self, dims: int, c_in: int, c_out: int, stride: int, norm: str | tuple, act: str | tuple) -> None:
        conv = Conv[Conv.CONV, dims]
        super().__init__(
            conv(c_in, c_out, kernel_size=3, stride=stride, padding=1),
            get_norm_layer(norm, dims, c_out),
            get_act_layer(act),
        )


class EncoderDecoderPerturber(nn.Module):
    """APPLE's generator ``G_p``, a small encoder-decoder: ``forward(f) = f + G_p(f)``, ``G_p`` zero at the start.

    Spatial latents ``(B, C, *spatial)``:

    * encoder: three 3x3 conv - norm - activation layers of ``encoder_channels`` (32, 64, 128), with
      ``encoder_strides`` (1, 2, 2): the latent is halved twice (a 8 x 8 U-Net bottleneck becomes 2 x 2; a stride on
      a size-1 axis leaves it at 1, so any latent size works);
    * bottleneck: ``num_bottleneck`` (4) residual layers ``h + act(norm(conv3x3(h)))`` at the last encoder width;
    * decoder: per encoder level from the deepest, an upsampling (nearest, to that level's input size) and a 3x3
      conv - norm - activation to the next shallower width (128 -> 64 -> 32), then the output layer, a 3x3 conv to the
      latent's ``channels``, zero-initialised (three decoder layers in all).

    Token latents ``(B, N, C)``: the same widths as per-token ``Linear`` - ``LayerNorm`` - GELU layers, no resampling.

    Args:
        channels: channels (spatial) or embedding size (token) of the latent; also the output channels.
        latent_type: ``"spatial"`` or ``"token"``.
        spatial_dims: 2 or 3 (spatial latents).
        encoder_channels: widths of the encoder layers (the decoder mirrors them).
        encoder_strides: strides of the encoder layers (spatial latents), one per encoder layer.
        num_bottleneck: number of residual bottleneck layers (>= 0).
        norm: MONAI norm spec; the default ``("group", {"num_groups": 8})`` needs widths divisible by 8 and works for
            any batch size and latent size.
        act: MONAI activation spec.
        zero_init: zero-initialise the output layer (training starts at ``f_p = f_o``).

    Example::

        g = EncoderDecoderPerturber(128, spatial_dims=2)   # the paper preset on a MONAI UNet bottleneck
        f_p = g(f_o)                                        # equals f_o before training
    """

    def __init__(
        self,
        channels: int,
        latent_type: str = "spatial",
        spatial_dims: int = 2,
        encoder_channels: tuple[int, ...] | list[int] = (32, 64, 128),
        encoder_strides: tuple[int, ...] | list[int] = (1, 2, 2),
        num_bottleneck: int = 4,
        norm: str | tuple = ("group", {"num_groups": 8}),
        act: str | tuple = "relu",
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        self.latent_type = look_up_option(latent_type, ("spatial", "token"))
        widths = [int(c) for c in encoder_channels]
        strides = [int(s) for s in encoder_strides]
        if int(channels) < 1 or not widths or min(widths) < 1 or int(num_bottleneck) < 0:
            raise ValueError(
                f"channels and encoder_channels must be >= 1 and num_bottleneck >= 0, got {channels}, {widths}, "
                f"{num_bottleneck}."
            )
        if self.latent_type == "spatial" and len(strides) != len(widths):
            raise ValueError(f"encoder_strides has {len(strides)} entries for {len(widths)} encoder layers.")
        self.channels, self.spatial_dims = int(channels), int(spatial_dims)
        self.encoder_strides = strides
        if self.latent_type == "spatial":
            dims = self.spatial_dims
            ins = [self.channels] + widths[:-1]
            self.encoder = nn.ModuleList(_ConvBlock(dims, i, o, s, norm, act) for i, o, s in zip(ins, widths, strides))
            self.bottleneck = nn.ModuleList(
                _ConvBlock(dims, widths[-1], widths[-1], 1, norm, act) for _ in range(int(num_bottleneck))
            )
            self.decoder = nn.ModuleList(
                _ConvBlock(dims, widths[k], widths[k - 1], 1, norm, act) for k in range(len(widths) - 1, 0, -1)
            )
            last = Conv[Conv.CONV, dims](widths[0], self.channels, kernel_size=3, padding=1)
        else:

            def block(i: int, o: int) -> nn.Module:
                return nn.Sequential(nn.Linear(i, o), nn.LayerNorm(o), nn.GELU())

            ins = [self.channels] + widths[:-1]
            self.encoder = nn.ModuleList(block(i, o) for i, o in zip(ins, widths))
            self.bottleneck = nn.ModuleList(block(widths[-1], widths[-1]) for _ in range(int(num_bottleneck)))
            self.decoder = nn.ModuleList(block(widths[k], widths[k - 1]) for k in range(len(widths) - 1, 0, -1))
            last = nn.Linear(widths[0], self.channels)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.out = last

    def _check(self, f: torch.Tensor) -> None:
        spatial = self.latent_type == "spatial"
        ok = (
            (f.ndim == self.spatial_dims + 2 and f.shape[1] == self.channels)
            if spatial
            else (f.ndim == 3 and f.shape[-1] == self.channels)
        )
        if not ok:
            raise ValueError(
                f"EncoderDecoderPerturber({self.latent_type}, channels={self.channels}) got a latent of shape "
                f"{tuple(f.shape)}; check latent_module / channels / latent_type."
            )

    def perturbation(self, f: torch.Tensor) -> torch.Tensor:
        """Return ``G_p(f)`` (same shape as ``f``)."""
        self._check(f)
        h, sizes = f, []
        for layer in self.encoder:
            sizes.append(h.shape[2:])
            h = layer(h)
        for layer in self.bottleneck:
            h = h + layer(h)
        for layer, size in zip(self.decoder, reversed(sizes[1:])):
            if self.latent_type == "spatial" and h.shape[2:] != size:
                h = F.interpolate(h, size=tuple(size), mode="nearest")
            h = layer(h)
        if self.latent_type == "spatial" and h.shape[2:] != sizes[0]:
            h = F.interpolate(h, size=tuple(sizes[0]), mode="nearest")
        return self.out(h)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Return ``f + G_p(f)``."""
        return f + self.perturbation(f)
