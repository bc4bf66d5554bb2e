# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE's networks: the latent perturbers ``G_p`` (:mod:`.perturber`), the attribute discriminators ``D_p``
(:mod:`.discriminator`), the hook wrapper around the frozen deployed segmentor (:mod:`.segmentor`) and a small
SAM-like test segmentor (:mod:`.sam_like`)."""

from __future__ import annotations

from .discriminator import AttributeDiscriminator, pool_latent
from .perturber import EncoderDecoderPerturber, LatentPerturber
from .sam_like import SAM_KEY_MAPPING, SamLikeSegmentor, TinySamImageEncoder, TinySamMaskDecoder, TinySamPromptEncoder
from .segmentor import PerturbedSegmentor, default_latent_module, latent_channels, unet_skip_modules

__all__ = [
    "LatentPerturber",
    "EncoderDecoderPerturber",
    "AttributeDiscriminator",
    "pool_latent",
    "PerturbedSegmentor",
    "default_latent_module",
    "latent_channels",
    "unet_skip_modules",
    "SamLikeSegmentor",
    "TinySamImageEncoder",
    "TinySamPromptEncoder",
    "TinySamMaskDecoder",
    "SAM_KEY_MAPPING",
]
