# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Thin Ignite handlers: group metrics, the fairness report, training resume (method handlers live in
:mod:`monai_fair.methods`)."""

from __future__ import annotations

from .checkpoint_selection import FairCheckpointSelector
from .fairness_report import FairnessReportHandler
from .group_metric import GroupClassificationMetricHandler, GroupSegmentationMetricHandler
from .mlflow_fairness import FairnessMLflowLogger
from .predictions_writer import PredictionsWriter
from .training_resume import TrainingResumeHandler, resume_fingerprint

__all__ = [
    "FairCheckpointSelector",
    "FairnessMLflowLogger",
    "FairnessReportHandler",
    "GroupClassificationMetricHandler",
    "GroupSegmentationMetricHandler",
    "PredictionsWriter",
    "TrainingResumeHandler",
    "resume_fingerprint",
]
