# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Thin Ignite handlers: group metrics, the fairness report, training resume (method handlers live in
:mod:`monai_fair.methods`)."""

from __future__ import annotations

from .fairness_report import FairnessReportHandler
from .group_metric import GroupClassificationMetricHandler, GroupSegmentationMetricHandler
from .training_resume import TrainingResumeHandler

__all__ = [
    "FairnessReportHandler",
    "GroupClassificationMetricHandler",
    "GroupSegmentationMetricHandler",
    "TrainingResumeHandler",
]
