# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group-aware MONAI engines (trainers and evaluators); method engines live in :mod:`monai_fair.methods`."""

from __future__ import annotations

from .group_evaluator import GroupSupervisedEvaluator
from .group_trainer import GroupSupervisedTrainer
from .utils import GroupAwareLoss, GroupOutputWriter, LossInputBinder, get_batch_group

__all__ = [
    "GroupSupervisedEvaluator",
    "GroupSupervisedTrainer",
    "GroupAwareLoss",
    "GroupOutputWriter",
    "get_batch_group",
]
