# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Method network wrappers (teachers, perturber, pruning utilities)."""

from __future__ import annotations

from .group_teachers import GroupTeachers
from .attribute_discriminator import AttributeDiscriminator
from .latent_perturber import LatentPerturber
from .perturbed_segmentor import PerturbedSegmentor, default_latent_module
from .sam_like import SamLikeSegmentor
from .channel_pruning import find_following_modules, make_pruning_permanent, mask_channels, pruned_channels, remove_channels
from .channel_scoring import LayerOutputCatcher, score_channels_snnl, snnl_channel_scores, stratified_batch_indices
from .fairprune import fairprune_saliency, fairprune_step, group_fisher_diagonal, prunable_weights, run_fairprune
from .small_vgg import SmallVGGNet
