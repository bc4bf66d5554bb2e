# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Neural-collapse analysis per subgroup under label bias (Mouheb et al., MICCAI 2024): NC1-NC4 (:mod:`.metrics`),
the streaming accumulator (:mod:`.accumulator`), the feature-collection loop (:mod:`.collection`), the suppressed
trajectory and its writer (:mod:`.trajectory`), the thin training-time handler (:mod:`.handlers`) and the bundle's
data preparation (:mod:`.stages`). Bundle: ``bundles/neural_collapse_classification``.
"""

from __future__ import annotations

from .metrics import (
    NC_METRIC_NAMES,
    classifier_from_linear,
    two_row_logits,
    nc_metrics_from_statistics,
)
from .accumulator import NeuralCollapseAccumulator, compute_neural_collapse
from .collection import NC4_CENTRES, NeuralCollapseEvaluation, collect_neural_collapse
from .trajectory import TRAJECTORY_FILE, NC_METRIC_LABELS, summarise_evaluation, NeuralCollapseTrajectoryWriter
from .handlers import NeuralCollapseHandler, log_spaced_epochs
from .stages import labelled_datalist_path, prepare_labelled_datalist

__all__ = [
    "NC_METRIC_NAMES",
    "classifier_from_linear",
    "two_row_logits",
    "nc_metrics_from_statistics",
    "compute_neural_collapse",
    "NeuralCollapseAccumulator",
    "NC4_CENTRES",
    "NeuralCollapseEvaluation",
    "collect_neural_collapse",
    "TRAJECTORY_FILE",
    "NC_METRIC_LABELS",
    "summarise_evaluation",
    "NeuralCollapseTrajectoryWriter",
    "NeuralCollapseHandler",
    "log_spaced_epochs",
    "labelled_datalist_path",
    "prepare_labelled_datalist",
]
