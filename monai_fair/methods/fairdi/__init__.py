# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi: fair distillation from group-specific teachers (Masroor et al., arXiv 2411.11939, 2024).

Everything of the method lives here, one file per role as in every ``monai_fair.methods`` package: the FIS and
distillation losses (:mod:`.losses`), the per-group teachers (:mod:`.networks`), the student trainer
(:mod:`.trainer`), the handlers that initialise, select (with FairDi's premise check), load and cache the teachers
and start the student from stage 0 (:mod:`.handlers`), and the bundle's stage functions (:mod:`.stages`:
checkpoints, stage-0 loss, teacher eligibility, sampler, student start). Bundles:
``bundles/fairdi_classification``, ``bundles/fairdi_segmentation``.
"""

from __future__ import annotations

from .losses import (
    FIS_DISTANCE_SCALES,
    FIS_GROUP_DISTANCES,
    FairDistillationLoss,
    FairDistillationSegLoss,
    FairIdentityScalingLoss,
    compute_fis_weights,
    distillation_kl,
    per_sample_cross_entropy,
    per_sample_dice_ce,
    route_teacher_logits,
    wasserstein_1d_to_groups,
)
from .networks import TEACHER_MODES, GroupTeachers, build_group_teachers
from .trainer import TEACHER_KEY, FairDiStudentTrainer, TeacherOutputWriter
from .handlers import (
    TEACHER_CRITERIA,
    GroupTeacherSelector,
    GroupTeachersLoader,
    StudentBaselineInit,
    TeacherBaselineInit,
    cache_teacher_outputs,
)
from .stages import (
    STAGE0_LOSSES,
    STAGE_CHECKPOINTS,
    STUDENT_INITS,
    group_balanced_sampler,
    stage0_loss,
    stage_checkpoint,
    student_init_path,
    teacher_eligible_groups,
)

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
    "StudentBaselineInit",
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
    "STUDENT_INITS",
    "student_init_path",
]
