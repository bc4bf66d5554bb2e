# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE: adversarial perturbation of the latent of a frozen, deployed segmentor (Xu et al., arXiv 2403.05114).

The perturber (:mod:`.perturber`), the attribute discriminator (:mod:`.discriminator`), the hook wrapper around the
frozen network (:mod:`.segmentor`), a SAM-like test segmentor (:mod:`.sam_like`), the perturber's and the
discriminator's losses (:mod:`.losses`), the engine's keys and events (:mod:`.keys`), the adversarial trainer
(:mod:`.trainer`), group recoverability (:mod:`.recoverability`), the privacy probe (:mod:`.probe`), the bundle's
stage helpers (:mod:`.workflow`) and the before/after report writer (:mod:`.comparison`).
Bundle: ``bundles/apple_segmentation``.
"""

from __future__ import annotations

from .keys import APPLE_LOSS_TERMS, AppleIterationEvents, AppleKeys, apple_loss_terms
from .losses import PRIVACY_TERMS, DiscriminatorLoss, PerturberLoss, group_balanced_mean
from .perturber import LatentPerturber
from .discriminator import AttributeDiscriminator, pool_latent
from .segmentor import PerturbedSegmentor, default_latent_module, unet_skip_modules
from .sam_like import SamLikeSegmentor, TinySamImageEncoder, TinySamPromptEncoder, TinySamMaskDecoder, SAM_KEY_MAPPING
from .recoverability import AttributeRecoverabilityMetric, compute_attribute_recoverability
from .trainer import AppleTrainer, check_groups
from .probe import collect_pooled_latents, fit_probe, privacy_probe, run_privacy_probe
from .comparison import write_apple_comparison
from .workflow import base_stage_needed, check_variant, make_perturbers, require_deployed_segmentor

__all__ = [
    "AppleKeys",
    "AppleIterationEvents",
    "APPLE_LOSS_TERMS",
    "apple_loss_terms",
    "PerturberLoss",
    "DiscriminatorLoss",
    "PRIVACY_TERMS",
    "group_balanced_mean",
    "LatentPerturber",
    "AttributeDiscriminator",
    "pool_latent",
    "PerturbedSegmentor",
    "default_latent_module",
    "unet_skip_modules",
    "SamLikeSegmentor",
    "TinySamImageEncoder",
    "TinySamPromptEncoder",
    "TinySamMaskDecoder",
    "SAM_KEY_MAPPING",
    "AttributeRecoverabilityMetric",
    "compute_attribute_recoverability",
    "AppleTrainer",
    "check_groups",
    "collect_pooled_latents",
    "fit_probe",
    "privacy_probe",
    "run_privacy_probe",
    "write_apple_comparison",
    "base_stage_needed",
    "require_deployed_segmentor",
    "make_perturbers",
    "check_variant",
]
