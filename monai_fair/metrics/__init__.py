# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group fairness metrics: functional ``compute_*`` and cumulative ``*Metric`` classes (MONAI style)."""

from __future__ import annotations

from monai_fair.metrics.group_classification import (
    CLASSIFICATION_FAIRNESS_METRICS,
    CLASSIFICATION_GROUP_METRICS,
    GroupClassificationMetric,
    compute_group_classification_metrics,
)
from monai_fair.metrics.group_counts import GroupAUC, segment_auc, weighted_confusion
from monai_fair.metrics.group_segmentation import (
    ES_VARIANTS,
    SEGMENTATION_FAIRNESS_METRICS,
    SEGMENTATION_GROUP_METRICS,
    GroupSegmentationMetric,
    compute_group_segmentation_metrics,
    compute_per_image_dice_iou,
)
from monai_fair.metrics.utils import FairnessMetricWarning, equity_scaled

__all__ = [
    "CLASSIFICATION_FAIRNESS_METRICS",
    "CLASSIFICATION_GROUP_METRICS",
    "ES_VARIANTS",
    "FairnessMetricWarning",
    "GroupAUC",
    "GroupClassificationMetric",
    "GroupSegmentationMetric",
    "SEGMENTATION_FAIRNESS_METRICS",
    "SEGMENTATION_GROUP_METRICS",
    "compute_group_classification_metrics",
    "compute_group_segmentation_metrics",
    "compute_per_image_dice_iou",
    "equity_scaled",
    "segment_auc",
    "weighted_confusion",
]
