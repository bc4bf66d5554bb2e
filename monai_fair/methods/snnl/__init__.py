# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness through channel pruning (Kong et al., MICCAI 2024): the soft nearest neighbour loss and its kernel
(:mod:`.losses`), per-channel scoring (:mod:`.scoring`), structured pruning (:mod:`.pruning`), the FATE metric
(:mod:`.metrics`), the prune / fine-tune rounds (:mod:`.driver`) and their thin Ignite handler (:mod:`.handlers`), and
the FairPrune baseline (:mod:`.fairprune`). Bundle: ``bundles/snnl_pruning_classification``.
"""

from __future__ import annotations

from .losses import (
    SNNL_DISTANCES,
    SNNLLabelIndex,
    check_snnl_options,
    snnl_label_index,
    snnl_sample_stats,
    snnl_kernel,
    snnl_per_anchor,
    compute_snnl,
    SoftNearestNeighborLoss,
)
from .scoring import stratified_batch_indices, snnl_channel_scores, score_channels_snnl
from .pruning import find_following_modules, mask_channels, pruned_channels, make_pruning_permanent, remove_channels
from .metrics import (
    FATE_FAIRNESS_KEY,
    FATE_OUTPUT_KEYS,
    compute_fate,
    scp_macro_f1,
    compute_scp_accuracy_fairness,
    FATEMetric,
    FATEMetricHandler,
)
from .driver import PRUNING_SELECTIONS, select_channels, channels_per_round, ChannelPruningDriver
from .handlers import SNNLPruningHandler
from .fairprune import prunable_weights, group_fisher_diagonal, fairprune_saliency, fairprune_step, FairPruneEngine
from .stages import (
    score_batches,
    load_baseline_weights,
    FINETUNE_OPTIMIZERS,
    FINETUNE_SAMPLERS,
    finetune_optimizer,
    RoundStepDecay,
    finetune_sampler,
)

__all__ = [
    "SNNL_DISTANCES",
    "SNNLLabelIndex",
    "check_snnl_options",
    "snnl_label_index",
    "snnl_sample_stats",
    "snnl_kernel",
    "snnl_per_anchor",
    "compute_snnl",
    "SoftNearestNeighborLoss",
    "stratified_batch_indices",
    "snnl_channel_scores",
    "score_channels_snnl",
    "find_following_modules",
    "mask_channels",
    "pruned_channels",
    "make_pruning_permanent",
    "remove_channels",
    "FATE_FAIRNESS_KEY",
    "FATE_OUTPUT_KEYS",
    "compute_fate",
    "scp_macro_f1",
    "compute_scp_accuracy_fairness",
    "FATEMetric",
    "FATEMetricHandler",
    "PRUNING_SELECTIONS",
    "select_channels",
    "channels_per_round",
    "ChannelPruningDriver",
    "SNNLPruningHandler",
    "prunable_weights",
    "group_fisher_diagonal",
    "fairprune_saliency",
    "fairprune_step",
    "FairPruneEngine",
    "score_batches",
    "load_baseline_weights",
    "FINETUNE_OPTIMIZERS",
    "FINETUNE_SAMPLERS",
    "finetune_optimizer",
    "RoundStepDecay",
    "finetune_sampler",
]
