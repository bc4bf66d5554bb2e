# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group fairness metrics: functional ``compute_*`` and cumulative ``*Metric`` classes (MONAI style), with one shared
core for validation, NaN policy, suppression and intervals (DeLong, iid / stratified / cluster bootstrap).

Layers (a module imports only from the layers below it; ``tests/metrics/test_layers.py`` checks it):

1. ``figures`` (the figure registry), ``utils``, ``suppression``, ``multiplicity``, ``resampling``,
   ``group_counts``, ``inputs`` (input normalisation), ``homogeneity`` (tests of equal group values);
2. ``core`` (groups, suppression, intervals, result), ``delong``;
3. ``group_classification``, ``group_segmentation``, ``calibration`` (the ``compute_*`` statistics);
4. ``verdict`` (verdicts, detectable gaps), ``comparison`` (paired model comparison);
5. ``cumulative``: the ``*Metric`` classes, the only module that imports MONAI (``CumulativeIterationMetric``).

The names below are resolved on first use (PEP 562), so ``from monai_fair.metrics import
compute_group_classification_metrics`` imports torch and numpy but not MONAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai_fair.utils.lazy import lazy_exports

#: public name -> module of :mod:`monai_fair.metrics` that defines it
_WHERE = {
    "AUC_CI_METHODS": "group_classification",
    "BOOTSTRAP_SCHEMES": "resampling",
    "CALIBRATION_FAIRNESS_METRICS": "calibration",
    "CALIBRATION_GROUP_METRICS": "calibration",
    "CLASSIFICATION_FAIRNESS_METRICS": "group_classification",
    "CLASSIFICATION_GROUP_METRICS": "group_classification",
    "ClassificationEngine": "group_classification",
    "DIFFERENCE_FIGURES": "verdict",
    "DeLongAUC": "delong",
    "ES_VARIANTS": "group_segmentation",
    "FAIRNESS_FORMS": "group_classification",
    "FairnessMetricWarning": "utils",
    "GroupAUC": "group_counts",
    "GroupClassificationMetric": "cumulative",
    "GroupCumulativeMetric": "cumulative",
    "GroupSegmentationMetric": "cumulative",
    "REASON_TOO_FEW_GROUPS": "suppression",
    "REASON_UNDEFINED": "suppression",
    "SEGMENTATION_FAIRNESS_METRICS": "group_segmentation",
    "SEGMENTATION_GROUP_METRICS": "group_segmentation",
    "SegmentationEngine": "group_segmentation",
    "VERDICTS": "verdict",
    "auc_differences": "delong",
    "bootstrap_cell_counts": "resampling",
    "bootstrap_weights": "resampling",
    "compare_models": "comparison",
    "compute_group_calibration": "calibration",
    "compute_group_classification_metrics": "group_classification",
    "compute_group_segmentation_metrics": "group_segmentation",
    "compute_per_image_dice_iou": "cumulative",
    "delong_group_auc": "delong",
    "detectable_gaps": "verdict",
    "disparity_verdict": "verdict",
    "equity_scaled": "utils",
    "fairness_verdicts": "verdict",
    "figure_direction": "comparison",
    "holm_adjust": "multiplicity",
    "homogeneity_test": "verdict",
    "segment_auc": "group_counts",
    "suppress_groups": "suppression",
    "weighted_confusion": "group_counts",
}
__all__ = sorted(_WHERE)

if TYPE_CHECKING:
    from .calibration import CALIBRATION_FAIRNESS_METRICS, CALIBRATION_GROUP_METRICS, compute_group_calibration
    from .comparison import compare_models, figure_direction
    from .cumulative import (
        GroupClassificationMetric,
        GroupCumulativeMetric,
        GroupSegmentationMetric,
        compute_per_image_dice_iou,
    )
    from .delong import DeLongAUC, auc_differences, delong_group_auc
    from .group_classification import (
        AUC_CI_METHODS,
        CLASSIFICATION_FAIRNESS_METRICS,
        CLASSIFICATION_GROUP_METRICS,
        ClassificationEngine,
        FAIRNESS_FORMS,
        compute_group_classification_metrics,
    )
    from .group_counts import GroupAUC, segment_auc, weighted_confusion
    from .group_segmentation import (
        ES_VARIANTS,
        SEGMENTATION_FAIRNESS_METRICS,
        SEGMENTATION_GROUP_METRICS,
        SegmentationEngine,
        compute_group_segmentation_metrics,
    )
    from .multiplicity import holm_adjust
    from .resampling import BOOTSTRAP_SCHEMES, bootstrap_cell_counts, bootstrap_weights
    from .suppression import REASON_TOO_FEW_GROUPS, REASON_UNDEFINED, suppress_groups
    from .utils import FairnessMetricWarning, equity_scaled
    from .verdict import (
        DIFFERENCE_FIGURES,
        VERDICTS,
        detectable_gaps,
        disparity_verdict,
        fairness_verdicts,
        homogeneity_test,
    )


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
