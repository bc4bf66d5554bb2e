# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Thin Ignite handlers: group metrics, the fairness report and the methods' drivers."""

from __future__ import annotations

from .neural_collapse import NeuralCollapseHandler, PenultimateFeatureHook, log_spaced_epochs
from .snnl_pruning import SNNLChannelPruningHandler, macro_f1_eodds
from .fairness_report import FairnessReportHandler
from .group_metric import GroupClassificationMetricHandler, GroupSegmentationMetricHandler
from .apple_comparison import write_apple_comparison
from .training_resume import TrainingResumeHandler
