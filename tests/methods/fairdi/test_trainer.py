# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The FairDi student trainer (:mod:`monai_fair.methods.fairdi.trainer`): cached and online teachers, clear errors."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader

from monai_fair.methods.fairdi import (
    FairDistillationLoss,
    FairDiStudentTrainer,
    GroupTeachers,
    cache_teacher_outputs,
)
from tests.methods.fairdi.fakes import RecorderNet, make_items


@pytest.mark.parametrize("cached", [True, False])
def test_student_trainer_cached_equals_online_and_hand_loss(cached):
    torch.manual_seed(0)
    teachers = GroupTeachers(teachers=[RecorderNet(), RecorderNet()]).eval()
    items = make_items(12, lambda i: int(i >= 8))
    data = cache_teacher_outputs(teachers, items, None) if cached else items
    student = RecorderNet()
    loss = FairDistillationLoss(temperature=2.0, lambda_kd=0.6, supervised="ce")
    trainer = FairDiStudentTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=DataLoader(data, batch_size=12, shuffle=False),
        network=student,
        optimizer=torch.optim.SGD(student.parameters(), lr=0.0),
        loss_function=loss,
        teachers=None if cached else teachers,
    )
    trainer.run()
    x = torch.stack([d["image"] for d in items])
    g = torch.stack([d["group"] for d in items])
    y = torch.stack([d["label"] for d in items])
    with torch.no_grad():
        expected = loss(student(x), y, g, teachers(x, g))
    out = trainer.state.output  # decollated: one dict per sample
    assert float(out[0]["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert [int(o["group"]) for o in out] == g.tolist()


def test_student_trainer_without_teachers_or_cache_fails_clearly():
    student = RecorderNet()
    trainer = FairDiStudentTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=DataLoader(make_items(4, lambda i: 0), batch_size=4),
        network=student,
        optimizer=torch.optim.SGD(student.parameters(), lr=0.1),
        loss_function=FairDistillationLoss(),
    )
    with pytest.raises(KeyError, match="teacher_logits"):
        trainer.run()
