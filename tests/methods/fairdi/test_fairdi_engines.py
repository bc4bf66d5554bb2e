# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi teachers and student engine on in-memory data: routing, caching, the teachers' stage (own-group training
on group-balanced batches, per-group selection with a usable threshold, fallback), the student trainer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from monai.engines import PrepareBatchExtraInput
from torch import nn

from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer
from monai_fair.methods.fairdi import (
    FairDistillationLoss,
    FairDiStudentTrainer,
    GroupTeachers,
    GroupTeacherSelector,
    GroupTeachersLoader,
    TeacherBaselineInit,
    build_group_teachers,
    cache_teacher_outputs,
    group_balanced_sampler,
    teacher_eligible_groups,
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
    with pytest.raises(ValueError, match=r"out-of-range ids \[3\]"):
        teachers(x, torch.tensor([0, 1, 3, 0, 0, 0]))
    # one id for the whole batch (e.g. the windows of one image under a sliding-window inferer)
    assert teachers(x, torch.tensor([1]))[:, 0].tolist() == [1.0] * 6


def test_heads_on_shared_backbone_match_manual_computation():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.body = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    net.classifier = nn.Sequential()
    net.classifier.fc = nn.Linear(4, 2)  # a nested head (issue 13: heads mode failed unless top-level)
    teachers = build_group_teachers(net, 2, mode="heads", head_name="classifier.fc")
    net.eval()
    teachers.train()
    assert not teachers.backbone.training and teachers.heads[0].training  # frozen backbone keeps its BN statistics
    teachers.load_baseline(net.state_dict())  # heads and backbone from the network they came from
    torch.testing.assert_close(teachers.heads[1].weight, net.classifier.fc.weight)
    with torch.no_grad():
        teachers.heads[1].weight.add_(1.0)
    x = torch.randn(5, 5)
    g = torch.tensor([0, 1, 1, 0, 1])
    feats = net.body(x)
    manual = torch.stack([teachers.heads[int(k)](feats[i]) for i, k in enumerate(g)])
    torch.testing.assert_close(manual[0], net(x)[0])
    torch.testing.assert_close(teachers(x, g), manual)
    torch.testing.assert_close(teachers.all_outputs(x)[g, torch.arange(5)], manual)
    assert not any(p.requires_grad for p in teachers.backbone.parameters())
    with pytest.raises(ValueError, match="no module named 'fc'"):
        build_group_teachers(net, 2, mode="heads", head_name="fc")


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
    items = _items(33, lambda i: group_of[i])
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
    items = _items(7, lambda i: [0, 0, 0, 0, 1, 1, 2][i])
    sampler = group_balanced_sampler(items, [True, True, False], num_samples=5)
    torch.testing.assert_close(sampler.weights, torch.tensor([0.25] * 4 + [0.5, 0.5, 0.0], dtype=torch.float64))
    assert sampler.num_samples == 5
    with pytest.raises(ValueError, match="no group has enough training samples"):
        group_balanced_sampler(items, [False, False, False])
    one_class = [{"label": 1, "group": 1}, {"label": 0, "group": 0}, {"label": 1, "group": 0}] * 20
    with pytest.warns(UserWarning, match="group 1"):
        assert teacher_eligible_groups(one_class, 2, min_group_size=5) == [True, False]


class _Shift(nn.Module):
    """Positive-class logit = 4 * x[0] + bias: perfect ranking (AUC 1) whatever the bias; the bias sets the rate."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        z = 4 * x.reshape(x.shape[0], -1)[:, 0] + self.bias
        return torch.stack([torch.zeros_like(z), z], 1)


def _run_selection(tmp_path, criterion, usable, biases_per_epoch, min_group_size=1):
    torch.manual_seed(0)
    teachers = GroupTeachers(teachers=[_Shift(), _Shift()])
    items = [
        {"image": torch.tensor([[float(2 * (i % 2) - 1)]]), "label": torch.tensor(i % 2), "group": torch.tensor(i // 8)}
        for i in range(16)
    ]
    post = lambda d: {**d, "pred": torch.softmax(d["pred"], 0), "label": d["label"]}  # noqa: E731
    evaluator = GroupSupervisedEvaluator(
        device="cpu",
        val_data_loader=DataLoader(items, batch_size=16),
        network=teachers,
        prepare_batch=PrepareBatchExtraInput("group"),
        postprocessing=post,
    )
    trainer = Engine(lambda e, b: None)
    path = str(tmp_path / f"teachers_{criterion}_{usable}.pt")
    selector = GroupTeacherSelector(
        teachers, evaluator, path, criterion=criterion, require_usable_threshold=usable, min_group_size=min_group_size
    )
    selector.attach(trainer)
    trainer.state = SimpleNamespace(epoch=0, iteration=0)
    trainer.fire_event(Events.STARTED)
    for epoch, biases in enumerate(biases_per_epoch, 1):
        trainer.state.epoch = epoch
        with torch.no_grad():
            for t, b in zip(teachers.teachers, biases):
                t.bias.fill_(b)
        evaluator.run()
    return torch.load(path, weights_only=True), json.loads(
        (tmp_path / f"teachers_{criterion}_{usable}.json").read_text()
    )


def test_selector_requires_a_usable_threshold(tmp_path):
    """Issue 13 (c): teacher 1 calls every case positive in epoch 1 (AUC 1, selection rate 1) and separates the
    classes at 0.5 in epoch 2 (AUC 1 again). Selecting on AUC alone keeps the one-class epoch; the default (balanced
    accuracy, selection rate in (0, 1)) keeps epoch 2, and the JSON records the threshold and its origin."""
    epochs = [(0.0, 20.0), (0.0, 0.0)]
    state, record = _run_selection(tmp_path, "auc", False, epochs)
    assert float(state["teachers.1.bias"]) == 20.0 and record["groups"]["1"]["selection_rate"] == 1.0
    state, record = _run_selection(tmp_path, "balanced_accuracy", True, epochs)
    assert float(state["teachers.1.bias"]) == 0.0 and float(state["teachers.0.bias"]) == 0.0
    assert record["groups"]["1"] == {"selected_epoch": 2, "balanced_accuracy": 1.0, "selection_rate": 0.5}
    assert record["groups"]["0"]["selected_epoch"] == 1
    assert record["threshold"] == 0.5 and "not fitted" in record["threshold_origin"]
    # AUC with the selection-rate check also refuses the one-class epoch
    state, _ = _run_selection(tmp_path, "auc", True, epochs)
    assert float(state["teachers.1.bias"]) == 0.0
    # never usable: the teacher stays at its starting point, with a warning at the end
    state, record = _run_selection(tmp_path, "balanced_accuracy", True, [(0.0, 20.0), (0.0, -20.0)])
    assert record["groups"]["1"]["selected_epoch"] is None
    # privacy: groups with fewer validation samples than min_group_size get no figures, only the selected epoch
    _, record = _run_selection(tmp_path, "balanced_accuracy", True, epochs, min_group_size=9)
    assert (
        set(record["groups"]["1"]) == {"selected_epoch", "suppressed"} and record["groups"]["1"]["selected_epoch"] == 2
    )


def test_loaders_name_the_missing_stage(tmp_path):
    teachers = GroupTeachers(teachers=[_Recorder()])
    engine = SimpleNamespace(state=SimpleNamespace(device="cpu"))
    with pytest.raises(FileNotFoundError, match=r"run the teachers \(train_teachers.json\) stage first"):
        GroupTeachersLoader(teachers, str(tmp_path / "teachers.pt"))(engine)
    with pytest.raises(FileNotFoundError, match=r"run the baseline \(train_baseline.json\) stage first"):
        TeacherBaselineInit(teachers, str(tmp_path / "baseline.pt"))(engine)
