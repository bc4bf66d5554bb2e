# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi: fair distillation from group-specific teachers (Masroor et al., arXiv 2411.11939, 2024).

Everything of the method lives here: the FIS loss of its stage 0 (:mod:`.fis`), the distillation losses
(:mod:`.distillation`), the per-group teachers (:mod:`.teachers`) and the student trainer and teacher training
(:mod:`.engines`). Bundles: ``bundles/fairdi_classification``, ``bundles/fairdi_segmentation``.
"""

from __future__ import annotations

from .fis import (
    FairIdentityScalingLoss,
    compute_fis_weights,
    wasserstein_1d_to_groups,
    per_sample_cross_entropy,
    per_sample_dice_ce,
    check_group,
)
from .distillation import FairDistillationLoss, FairDistillationSegLoss, distillation_kl, route_teacher_logits
from .teachers import GroupTeachers
from .engines import (
    FairDiStudentTrainer,
    TeacherOutputWriter,
    train_group_teachers,
    load_group_teachers,
    cache_teacher_outputs,
    filter_group,
)

__all__ = [
    "FairIdentityScalingLoss",
    "compute_fis_weights",
    "wasserstein_1d_to_groups",
    "per_sample_cross_entropy",
    "per_sample_dice_ce",
    "check_group",
    "FairDistillationLoss",
    "FairDistillationSegLoss",
    "distillation_kl",
    "route_teacher_logits",
    "GroupTeachers",
    "FairDiStudentTrainer",
    "TeacherOutputWriter",
    "train_group_teachers",
    "load_group_teachers",
    "cache_teacher_outputs",
    "filter_group",
]
