# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The FairDi student trainer (stage 2 of Masroor, Hassan et al., "Fair Distillation: Teaching Fairness from Biased
Teachers in Medical Imaging", arXiv 2411.11939): a MONAI trainer whose loss also receives each sample's own-group
teacher logits, cached (:class:`monai_fair.methods.fairdi.GroupTeachersLoader`) or computed online. The student never
sees the group at inference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from monai.utils import convert_to_tensor

from monai_fair.engines.group_trainer import GroupSupervisedTrainer
from monai_fair.engines.utils import GroupAwareLoss, LossInputBinder, get_batch_group
from monai_fair.methods.fairdi.networks import GroupTeachers

__all__ = ["FairDiStudentTrainer", "TeacherOutputWriter", "TEACHER_KEY"]

TEACHER_KEY = "teacher_logits"


class TeacherOutputWriter:
    """Put the own-group teacher logits of the batch in ``engine.state.output[teacher_key]``.

    Cached outputs (``batch[teacher_key]``, see :class:`GroupTeachersLoader`) are used when present; otherwise the
    ``teachers`` run online, in eval mode and without gradient, on the batch's (possibly augmented) images.
    """

    def __init__(self, teachers: GroupTeachers | None, teacher_key: str = TEACHER_KEY, group_key: str = "group"):
        self.teachers = teachers
        self.teacher_key = teacher_key
        self.group_key = group_key

    def __call__(self, engine: Any) -> None:
        batch, out = engine.state.batch, engine.state.output
        if self.teacher_key in batch:
            # a plain tensor: a MetaTensor's per-op metadata handling would run through the whole distillation loss
            t = convert_to_tensor(batch[self.teacher_key], track_meta=False)
            out[self.teacher_key] = t.to(engine.state.device, non_blocking=True)
            return
        if self.teachers is None:
            raise KeyError(
                f"batch has no cached '{self.teacher_key}' and no online teachers were given; attach a "
                "monai_fair.methods.fairdi.GroupTeachersLoader(cache=True) or pass `teachers`."
            )
        group = get_batch_group(batch, self.group_key, engine.state.device)
        self.teachers.eval()
        with torch.no_grad():
            out[self.teacher_key] = self.teachers(out[Keys.IMAGE], group)


class FairDiStudentTrainer(GroupSupervisedTrainer):
    """MONAI trainer for the FairDi student: ``loss_function(pred, label, group, teacher_logits)``.

    Args:
        loss_function: e.g. :class:`monai_fair.methods.fairdi.FairDistillationLoss`.
        teachers: :class:`monai_fair.methods.fairdi.GroupTeachers` for the online mode (batches without cached
            outputs); ``None`` requires cached ``teacher_key`` entries in every batch.
        teacher_key: key of the cached own-group teacher logits in the batch.
        group_key: key of the group id (training only; the student network never receives it).
        args, kwargs: the other arguments of :class:`monai.engines.SupervisedTrainer`.
    """

    def __init__(
        self,
        *args: Any,
        loss_function: Callable,
        teachers: GroupTeachers | None = None,
        teacher_key: str = TEACHER_KEY,
        group_key: str = "group",
        **kwargs: Any,
    ) -> None:
        adapter = GroupAwareLoss(loss_function, keys=(group_key, teacher_key))
        super().__init__(*args, loss_function=adapter, group_key=group_key, loss_takes_group=False, **kwargs)
        self.teachers = teachers
        self.teacher_key = teacher_key
        # registered after GroupOutputWriter, so the group is in the output first; then both are bound to the loss
        self.add_event_handler(IterationEvents.FORWARD_COMPLETED, TeacherOutputWriter(teachers, teacher_key, group_key))
        self.add_event_handler(IterationEvents.FORWARD_COMPLETED, LossInputBinder(adapter))
