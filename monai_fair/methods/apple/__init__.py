# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE: adversarial perturbation of the latent of a frozen, deployed segmentor (Xu et al., arXiv 2403.05114).

The perturber (:mod:`.perturber`), the attribute discriminator (:mod:`.discriminator`), the hook wrapper around the
frozen network (:mod:`.segmentor`), a SAM-like test segmentor (:mod:`.sam_like`), the losses (:mod:`.losses`), the
adversarial trainer (:mod:`.trainer`) and the before/after comparison (:mod:`.comparison`).
Bundle: ``bundles/apple_segmentation``.
"""

from __future__ import annotations

from .losses import AdversarialPrivacyLoss, check_groups
from .perturber import LatentPerturber
from .discriminator import AttributeDiscriminator
from .segmentor import PerturbedSegmentor, default_latent_module
from .sam_like import SamLikeSegmentor, TinySamImageEncoder, TinySamPromptEncoder, TinySamMaskDecoder, SAM_KEY_MAPPING
from .trainer import AppleTrainer
from .comparison import write_apple_comparison

__all__ = [
    "AdversarialPrivacyLoss",
    "check_groups",
    "LatentPerturber",
    "AttributeDiscriminator",
    "PerturbedSegmentor",
    "default_latent_module",
    "SamLikeSegmentor",
    "TinySamImageEncoder",
    "TinySamPromptEncoder",
    "TinySamMaskDecoder",
    "SAM_KEY_MAPPING",
    "AppleTrainer",
    "write_apple_comparison",
]
