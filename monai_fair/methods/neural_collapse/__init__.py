# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Neural-collapse analysis per subgroup under label bias (Mouheb et al., MICCAI 2024): NC1-NC4
(:mod:`.metrics`), the streaming accumulator (:mod:`.accumulator`) and the training-time handler (:mod:`.handlers`).
Bundle: ``bundles/neural_collapse_classification``.
"""

from __future__ import annotations

from .metrics import (
    NC_METRIC_NAMES,
    classifier_from_linear,
    two_row_logits,
    nc_metrics_from_statistics,
    compute_neural_collapse,
    compute_neural_collapse_reference,
)
from .accumulator import NeuralCollapseAccumulator
from .handlers import NeuralCollapseHandler, PenultimateFeatureHook, log_spaced_epochs

__all__ = [
    "NC_METRIC_NAMES",
    "classifier_from_linear",
    "two_row_logits",
    "nc_metrics_from_statistics",
    "compute_neural_collapse",
    "compute_neural_collapse_reference",
    "NeuralCollapseAccumulator",
    "NeuralCollapseHandler",
    "PenultimateFeatureHook",
    "log_spaced_epochs",
]
