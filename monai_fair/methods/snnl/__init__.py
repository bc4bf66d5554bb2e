# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness through channel pruning (Kong et al., MICCAI 2024): the soft nearest neighbour loss on the sensitive
attribute (:mod:`.loss`), per-channel scoring (:mod:`.scoring`), structured pruning (:mod:`.pruning`), the iterative
prune/fine-tune driver (:mod:`.handlers`) and the FairPrune baseline (:mod:`.fairprune`).
Bundle: ``bundles/snnl_pruning_classification``.
"""

from __future__ import annotations

from .loss import snnl_per_anchor, compute_snnl, SoftNearestNeighborLoss
from .scoring import stratified_batch_indices, snnl_channel_scores, score_channels_snnl, LayerOutputCatcher
from .pruning import find_following_modules, mask_channels, pruned_channels, make_pruning_permanent, remove_channels
from .fairprune import prunable_weights, group_fisher_diagonal, fairprune_saliency, fairprune_step, run_fairprune
from .handlers import SNNLChannelPruningHandler, macro_f1_eodds

__all__ = [
    "snnl_per_anchor",
    "compute_snnl",
    "SoftNearestNeighborLoss",
    "stratified_batch_indices",
    "snnl_channel_scores",
    "score_channels_snnl",
    "LayerOutputCatcher",
    "find_following_modules",
    "mask_channels",
    "pruned_channels",
    "make_pruning_permanent",
    "remove_channels",
    "prunable_weights",
    "group_fisher_diagonal",
    "fairprune_saliency",
    "fairprune_step",
    "run_fairprune",
    "SNNLChannelPruningHandler",
    "macro_f1_eodds",
]
