# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE: adversarial perturbation of the latent of a frozen, deployed segmentor (Xu et al., arXiv 2403.05114).

The method template shared by every ``methods/<m>/``: :mod:`.networks` (the perturbers, the attribute discriminator,
the hook wrapper around the frozen network, a SAM-like test segmentor), :mod:`.losses` (the perturber's and the
discriminator's losses), :mod:`.trainer` (the adversarial trainer), :mod:`.metrics` (group recoverability from the
discriminator's logits), :mod:`.stages` (the bundle's stage functions); method-specific modules: :mod:`.keys` (the
engine's keys and events), :mod:`.probe` (the privacy probe) and :mod:`.comparison` (the before/after report).
Bundle: ``bundles/apple_segmentation``.
"""

from __future__ import annotations

from .keys import APPLE_LOSS_TERMS, AppleIterationEvents, AppleKeys, apple_loss_terms
from .losses import PRIVACY_TERMS, DiscriminatorLoss, PerturberLoss, group_balanced_mean
from .networks import (
    LatentPerturber,
    EncoderDecoderPerturber,
    AttributeDiscriminator,
    pool_latent,
    PerturbedSegmentor,
    default_latent_module,
    latent_channels,
    unet_skip_modules,
    SamLikeSegmentor,
    TinySamImageEncoder,
    TinySamPromptEncoder,
    TinySamMaskDecoder,
    SAM_KEY_MAPPING,
)
from .metrics import AttributeRecoverabilityMetric, compute_attribute_recoverability
from .trainer import AppleTrainer, check_groups, SEG_TARGETS
from .probe import collect_pooled_latents, fit_probe, privacy_probe, run_privacy_probe
from .comparison import HEADLINE_FIGURES, paired_with_deployed, write_apple_comparison
from .stages import (
    PERTURBER_ARCHS,
    base_stage_needed,
    check_variant,
    deployed_checkpoint,
    deployed_network,
    latent_sites,
    make_perturbers,
    require_deployed_segmentor,
    select_preset,
)

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
    "AttributeRecoverabilityMetric",
    "compute_attribute_recoverability",
    "AppleTrainer",
    "check_groups",
    "SEG_TARGETS",
    "collect_pooled_latents",
    "fit_probe",
    "privacy_probe",
    "run_privacy_probe",
    "write_apple_comparison",
    "paired_with_deployed",
    "HEADLINE_FIGURES",
    "base_stage_needed",
    "require_deployed_segmentor",
    "make_perturbers",
    "check_variant",
    "PERTURBER_ARCHS",
    "select_preset",
    "deployed_network",
    "deployed_checkpoint",
    "latent_sites",
]
