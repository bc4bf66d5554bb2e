# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group-aware MONAI engines (trainers and evaluators) and the methods' engines."""

from __future__ import annotations

from .group_evaluator import GroupSupervisedEvaluator
from .group_trainer import GroupSupervisedTrainer
from .utils import GroupAwareLoss, GroupOutputWriter, get_batch_group
from .fairdi import FairDiStudentTrainer, TeacherOutputWriter, cache_teacher_outputs, load_group_teachers, train_group_teachers
from .apple_trainer import AppleTrainer
