# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group fairness metrics: functional ``compute_*`` and cumulative ``*Metric`` classes (MONAI style), with one shared
core for validation, NaN policy, suppression and intervals (DeLong, iid / stratified / cluster bootstrap)."""

from __future__ import annotations

from monai_fair.metrics.calibration import (
    CALIBRATION_FAIRNESS_METRICS,
    CALIBRATION_GROUP_METRICS,
    compute_group_calibration,
)
from monai_fair.metrics.comparison import compare_models, figure_direction
from monai_fair.metrics.delong import DeLongAUC, auc_differences, delong_group_auc
from monai_fair.metrics.group_classification import (
    AUC_CI_METHODS,
    CLASSIFICATION_FAIRNESS_METRICS,
    CLASSIFICATION_GROUP_METRICS,
    FAIRNESS_FORMS,
    ClassificationEngine,
    GroupClassificationMetric,
    compute_group_classification_metrics,
)
from monai_fair.metrics.group_counts import GroupAUC, segment_auc, weighted_confusion
from monai_fair.metrics.group_segmentation import (
    ES_VARIANTS,
    SEGMENTATION_FAIRNESS_METRICS,
    SEGMENTATION_GROUP_METRICS,
    GroupSegmentationMetric,
    SegmentationEngine,
    compute_group_segmentation_metrics,
    compute_per_image_dice_iou,
)
from monai_fair.metrics.multiplicity import holm_adjust
from monai_fair.metrics.resampling import BOOTSTRAP_SCHEMES, bootstrap_cell_counts, bootstrap_weights
from monai_fair.metrics.suppression import REASON_TOO_FEW_GROUPS, REASON_UNDEFINED, suppress_groups
from monai_fair.metrics.utils import FairnessMetricWarning, equity_scaled
from monai_fair.metrics.verdict import (
    DIFFERENCE_FIGURES,
    VERDICTS,
    detectable_gaps,
    disparity_verdict,
    fairness_verdicts,
    homogeneity_test,
)

__all__ = [
    "AUC_CI_METHODS",
    "BOOTSTRAP_SCHEMES",
    "CALIBRATION_FAIRNESS_METRICS",
    "CALIBRATION_GROUP_METRICS",
    "CLASSIFICATION_FAIRNESS_METRICS",
    "CLASSIFICATION_GROUP_METRICS",
    "ClassificationEngine",
    "DIFFERENCE_FIGURES",
    "DeLongAUC",
    "ES_VARIANTS",
    "FAIRNESS_FORMS",
    "FairnessMetricWarning",
    "GroupAUC",
    "GroupClassificationMetric",
    "GroupSegmentationMetric",
    "REASON_TOO_FEW_GROUPS",
    "REASON_UNDEFINED",
    "SEGMENTATION_FAIRNESS_METRICS",
    "SEGMENTATION_GROUP_METRICS",
    "SegmentationEngine",
    "VERDICTS",
    "auc_differences",
    "bootstrap_cell_counts",
    "bootstrap_weights",
    "compare_models",
    "compute_group_calibration",
    "compute_group_classification_metrics",
    "compute_group_segmentation_metrics",
    "compute_per_image_dice_iou",
    "delong_group_auc",
    "detectable_gaps",
    "disparity_verdict",
    "equity_scaled",
    "fairness_verdicts",
    "figure_direction",
    "holm_adjust",
    "homogeneity_test",
    "segment_auc",
    "suppress_groups",
    "weighted_confusion",
]
