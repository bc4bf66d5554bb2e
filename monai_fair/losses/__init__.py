# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Method losses (FairDi distillation, FIS, SNNL, APPLE adversarial terms)."""

from __future__ import annotations

from .snnl import SoftNearestNeighborLoss, compute_snnl, snnl_per_anchor
from .fair_distillation import FairDistillationLoss, FairDistillationSegLoss, distillation_kl, route_teacher_logits
from .fis import FairIdentityScalingLoss, compute_fis_weights, wasserstein_1d_to_groups
from .adversarial_privacy import AdversarialPrivacyLoss, check_groups
