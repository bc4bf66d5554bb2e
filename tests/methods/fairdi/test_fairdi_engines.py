# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi teachers and student engine on in-memory data: routing, caching, own-group training, fallback."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from torch import nn

from monai_fair.methods.fairdi import (
    FairDistillationLoss,
    FairDiStudentTrainer,
    GroupTeachers,
    cache_teacher_outputs,
    load_group_teachers,
    train_group_teachers,
)


class _Const(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return self.value.expand(x.shape[0], 2) + 0 * x.reshape(x.shape[0], -1)[:, :2]


class _Recorder(nn.Module):
    """Tiny linear classifier that records the sample ids (pixel [0, 0, 0]) it sees while training."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.seen: set[int] = set()

    def forward(self, x):
        if self.training:
            self.seen.update(int(v) for v in x[:, 0, 0, 0].round().tolist())
        return self.fc(x.reshape(x.shape[0], -1)[:, 1:5])


def _items(n: int, group_of, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        img = torch.randn(1, 3, 3, generator=g)
        img[0, 0, 0] = float(i)
        items.append({"image": img, "label": torch.tensor(i % 2), "group": torch.tensor(group_of(i))})
    return items


def test_group_teachers_route_to_own_group():
    teachers = GroupTeachers(teachers=[_Const(k) for k in range(3)])
    x = torch.randn(6, 1, 3, 3)
    g = torch.tensor([2, 0, 1, 1, 2, 0])
    assert teachers(x, g)[:, 0].tolist() == [2.0, 0.0, 1.0, 1.0, 2.0, 0.0]
    assert teachers.all_outputs(x).shape == (3, 6, 2)
    # a group absent from the batch and a single-sample group
    assert teachers(x[:2], torch.tensor([2, 0]))[:, 0].tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match="out of range"):
        teachers(x, torch.tensor([0, 1, 3, 0, 0, 0]))


def test_heads_on_shared_backbone_match_manual_computation():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.body = nn.Linear(5, 4)
    net.fc = nn.Linear(4, 2)
    teachers = GroupTeachers.with_shared_backbone(net, num_groups=2)
    with torch.no_grad():
        teachers.heads[1].weight.add_(1.0)
    x = torch.randn(5, 5)
    g = torch.tensor([0, 1, 1, 0, 1])
    feats = net.body(x)
    manual = torch.stack([teachers.heads[int(k)](feats[i]) for i, k in enumerate(g)])
    torch.testing.assert_close(teachers(x, g), manual)
    torch.testing.assert_close(teachers.all_outputs(x)[g, torch.arange(5)], manual)
    assert not any(p.requires_grad for p in teachers.backbone.parameters())


def test_cache_matches_online_teachers():
    teachers = GroupTeachers(teachers=[_Recorder(), _Recorder()]).eval()
    items = _items(10, lambda i: i % 3 == 0)
    cached = cache_teacher_outputs(teachers, items, None, batch_size=4)
    assert "teacher_logits" not in items[0]  # input items untouched
    x = torch.stack([d["image"] for d in items])
    g = torch.stack([d["group"] for d in items]).long()
    expected = teachers(x, g).detach()
    torch.testing.assert_close(torch.stack([torch.as_tensor(d["teacher_logits"]) for d in cached]), expected)


@pytest.mark.parametrize("cached", [True, False])
def test_student_trainer_cached_equals_online_and_hand_loss(cached):
    torch.manual_seed(0)
    teachers = GroupTeachers(teachers=[_Recorder(), _Recorder()]).eval()
    items = _items(12, lambda i: int(i >= 8))
    data = cache_teacher_outputs(teachers, items, None) if cached else items
    student = _Recorder()
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
    student = _Recorder()
    trainer = FairDiStudentTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=DataLoader(_items(4, lambda i: 0), batch_size=4),
        network=student,
        optimizer=torch.optim.SGD(student.parameters(), lr=0.1),
        loss_function=FairDistillationLoss(),
    )
    with pytest.raises(KeyError, match="teacher_logits"):
        trainer.run()


def test_teachers_trained_on_own_group_and_small_group_falls_back(tmp_path):
    torch.manual_seed(0)
    train = _items(30, lambda i: 0 if i < 24 else (1 if i < 27 else 2))  # group 1: 3 samples, group 2: 3
    val = _items(8, lambda i: i % 2)
    torch.save(_Recorder().state_dict(), tmp_path / "baseline.pt")
    with pytest.warns(UserWarning, match="group 1 has 3 training samples < min_group_size=5"):
        teachers = train_group_teachers(
            _Recorder,
            train,
            val,
            3,
            min_group_size=5,
            epochs=1,
            batch_size=8,
            init_path=str(tmp_path / "baseline.pt"),
            ckpt_dir=str(tmp_path),
        )
    group0_ids = set(range(24))
    assert teachers.teachers[0].seen and teachers.teachers[0].seen <= group0_ids
    baseline = torch.load(tmp_path / "baseline.pt", weights_only=True)
    for k in (1, 2):  # fallbacks: untrained copies of the baseline
        assert not teachers.teachers[k].seen
        torch.testing.assert_close(teachers.teachers[k].state_dict(), baseline)
    assert not torch.equal(teachers.teachers[0].fc.weight, baseline["fc.weight"])
    reloaded = load_group_teachers(_Recorder, str(tmp_path / "teachers.pt"), 3)
    x, g = torch.randn(4, 1, 3, 3), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(reloaded(x, g), teachers(x, g))


def test_heads_mode_trains_only_heads(tmp_path):
    torch.manual_seed(0)
    train = _items(24, lambda i: (i // 2) % 2)  # both labels in both groups
    torch.save(_Recorder().state_dict(), tmp_path / "baseline.pt")
    teachers = train_group_teachers(
        _Recorder,
        train,
        train,
        2,
        mode="heads",
        min_group_size=2,
        epochs=1,
        batch_size=8,
        init_path=str(tmp_path / "baseline.pt"),
    )
    # the frozen backbone of _Recorder is the identity-like slicing; only the 2 heads hold parameters
    assert len(teachers.heads) == 2 and not torch.equal(teachers.heads[0].weight, teachers.heads[1].weight)
    with pytest.raises(ValueError, match="needs init_path"):
        train_group_teachers(_Recorder, train, train, 2, mode="heads")
