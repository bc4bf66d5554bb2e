# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Post-processing: decision thresholds fitted on validation, one per group (Hardt et al., NeurIPS 2016)."""

from __future__ import annotations

from .thresholds import THRESHOLD_CRITERIA, apply_group_thresholds, fit_group_thresholds, fit_threshold

__all__ = ["THRESHOLD_CRITERIA", "apply_group_thresholds", "fit_group_thresholds", "fit_threshold"]
