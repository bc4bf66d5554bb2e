# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi: fair distillation from group-specific teachers (Masroor et al., arXiv 2411.11939, 2024).

Everything of the method lives here: the FIS loss of its stage 0 (:mod:`.fis`), the distillation losses
(:mod:`.distillation`), the per-group teachers (:mod:`.teachers`), the student trainer and the handlers that train,
select, load and cache the teachers (:mod:`.engines`), and the stage checkpoints (:mod:`.stages`). Bundles:
``bundles/fairdi_classification``, ``bundles/fairdi_segmentation``.
"""

from __future__ import annotations

from .fis import (
    FIS_DISTANCE_SCALES,
    FIS_GROUP_DISTANCES,
    FairIdentityScalingLoss,
    compute_fis_weights,
    per_sample_cross_entropy,
    per_sample_dice_ce,
    wasserstein_1d_to_groups,
)
from .distillation import FairDistillationLoss, FairDistillationSegLoss, distillation_kl, route_teacher_logits
from .teachers import TEACHER_MODES, GroupTeachers, build_group_teachers
from .engines import (
    TEACHER_CRITERIA,
    TEACHER_KEY,
    FairDiStudentTrainer,
    GroupTeacherSelector,
    GroupTeachersLoader,
    TeacherBaselineInit,
    TeacherOutputWriter,
    cache_teacher_outputs,
    group_balanced_sampler,
    teacher_eligible_groups,
)
from .stages import STAGE0_LOSSES, STAGE_CHECKPOINTS, stage0_loss, stage_checkpoint

__all__ = [
    "FairIdentityScalingLoss",
    "compute_fis_weights",
    "wasserstein_1d_to_groups",
    "per_sample_cross_entropy",
    "per_sample_dice_ce",
    "FIS_GROUP_DISTANCES",
    "FIS_DISTANCE_SCALES",
    "FairDistillationLoss",
    "FairDistillationSegLoss",
    "distillation_kl",
    "route_teacher_logits",
    "GroupTeachers",
    "build_group_teachers",
    "TEACHER_MODES",
    "FairDiStudentTrainer",
    "TeacherOutputWriter",
    "GroupTeachersLoader",
    "TeacherBaselineInit",
    "GroupTeacherSelector",
    "cache_teacher_outputs",
    "teacher_eligible_groups",
    "group_balanced_sampler",
    "TEACHER_CRITERIA",
    "TEACHER_KEY",
    "STAGE_CHECKPOINTS",
    "stage_checkpoint",
    "STAGE0_LOSSES",
    "stage0_loss",
]
