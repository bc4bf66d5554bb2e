# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi's stage functions (:mod:`monai_fair.methods.fairdi.stages`): the teachers' stage trains each teacher on
its own group for equal steps; the group-balanced sampler."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from monai.engines import PrepareBatchExtraInput
from torch import nn

from monai_fair.engines import GroupSupervisedTrainer
from monai_fair.methods.fairdi import (
    TeacherBaselineInit,
    build_group_teachers,
    group_balanced_sampler,
    teacher_eligible_groups,
)
from tests.methods.fairdi.fakes import make_items


class _Counter(nn.Module):
    """Linear classifier that counts, per sample id (pixel [0, 0, 0]), how often it is trained on that sample."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.draws: dict[int, int] = {}

    def forward(self, x):
        if self.training:
            for v in x[:, 0, 0, 0].round().long().tolist():
                self.draws[v] = self.draws.get(v, 0) + 1
        return self.fc(x.reshape(x.shape[0], -1)[:, 1:5])


def _teacher_stage(items, teachers, eligible, num_samples, batch_size=10):
    sampler = group_balanced_sampler(items, eligible, num_samples=num_samples, seed=0)
    return GroupSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=DataLoader(items, batch_size=batch_size, sampler=sampler),
        network=teachers,
        optimizer=torch.optim.SGD([p for p in teachers.parameters() if p.requires_grad], lr=0.1),
        loss_function=nn.CrossEntropyLoss(),
        prepare_batch=PrepareBatchExtraInput("group"),
    )


def test_teachers_stage_trains_each_teacher_on_its_own_group_for_equal_steps(tmp_path):
    """Issue 13 (b): one trainer trains all teachers on group-balanced batches; each teacher learns from its own
    group only, the small group's teacher gets as many samples as the large one's, an ineligible group none."""
    torch.manual_seed(0)
    group_of = [0] * 24 + [1] * 6 + [2] * 3  # group 2 is below teacher_min_group_size
    items = make_items(33, lambda i: group_of[i])
    with pytest.warns(UserWarning, match=r"group 2 has too few training samples \(teacher_min_group_size=5\)") as rec:
        eligible = teacher_eligible_groups(items, 3, min_group_size=5)
    assert eligible == [True, True, False] and "3 " not in str(rec[0].message)  # no count of a small group
    baseline = _Counter()
    torch.save(baseline.state_dict(), tmp_path / "baseline.pt")
    teachers = build_group_teachers(_Counter(), 3)
    trainer = _teacher_stage(items, teachers, eligible, num_samples=400)
    TeacherBaselineInit(teachers, str(tmp_path / "baseline.pt")).attach(trainer)
    trainer.run()
    seen = [set(t.draws) for t in teachers.teachers]
    assert seen[0] <= set(range(24)) and seen[1] <= set(range(24, 30)) and not seen[2]
    n0, n1 = sum(teachers.teachers[0].draws.values()), sum(teachers.teachers[1].draws.values())
    assert n0 + n1 == 400 and 150 < n1 < 250  # about half each, although group 1 is 4x smaller
    torch.testing.assert_close(teachers.teachers[2].state_dict(), baseline.state_dict())  # untouched fallback
    assert not torch.equal(teachers.teachers[1].fc.weight, baseline.fc.weight)


def test_group_balanced_sampler_weights():
    items = make_items(7, lambda i: [0, 0, 0, 0, 1, 1, 2][i])
    sampler = group_balanced_sampler(items, [True, True, False], num_samples=5)
    torch.testing.assert_close(sampler.weights, torch.tensor([0.25] * 4 + [0.5, 0.5, 0.0], dtype=torch.float64))
    assert sampler.num_samples == 5
    with pytest.raises(ValueError, match="no group has enough training samples"):
        group_balanced_sampler(items, [False, False, False])
    one_class = [{"label": 1, "group": 1}, {"label": 0, "group": 0}, {"label": 1, "group": 0}] * 20
    with pytest.warns(UserWarning, match="group 1"):
        assert teacher_eligible_groups(one_class, 2, min_group_size=5) == [True, False]
