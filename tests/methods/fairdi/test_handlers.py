# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi handlers (:mod:`monai_fair.methods.fairdi.handlers`): the teacher cache, per-group selection with a
usable threshold, the loaders."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from monai.engines import PrepareBatchExtraInput
from torch import nn

from monai_fair.engines import GroupSupervisedEvaluator
from monai_fair.methods.fairdi import (
    GroupTeachers,
    GroupTeacherSelector,
    GroupTeachersLoader,
    StudentBaselineInit,
    TeacherBaselineInit,
    cache_teacher_outputs,
)
from tests.methods.fairdi.fakes import RecorderNet, make_items


class _Shift(nn.Module):
    """Positive-class logit = 4 * x[0] + bias: perfect ranking (AUC 1) whatever the bias; the bias sets the rate."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        z = 4 * x.reshape(x.shape[0], -1)[:, 0] + self.bias
        return torch.stack([torch.zeros_like(z), z], 1)


def test_cache_matches_online_teachers():
    teachers = GroupTeachers(teachers=[RecorderNet(), RecorderNet()]).eval()
    items = make_items(10, lambda i: i % 3 == 0)
    cached = cache_teacher_outputs(teachers, items, None, batch_size=4)
    assert "teacher_logits" not in items[0]  # input items untouched
    x = torch.stack([d["image"] for d in items])
    g = torch.stack([d["group"] for d in items]).long()
    expected = teachers(x, g).detach()
    torch.testing.assert_close(torch.stack([torch.as_tensor(d["teacher_logits"]) for d in cached]), expected)


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
        teachers,
        evaluator,
        path,
        criterion=criterion,
        require_usable_threshold=usable,
        min_group_size=min_group_size,
        premise_check=False,  # selection alone; the premise check has its own tests below
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
    teachers = GroupTeachers(teachers=[RecorderNet()])
    engine = SimpleNamespace(state=SimpleNamespace(device="cpu"))
    with pytest.raises(FileNotFoundError, match=r"run the teachers \(train_teachers.json\) stage first"):
        GroupTeachersLoader(teachers, str(tmp_path / "teachers.pt"))(engine)
    with pytest.raises(FileNotFoundError, match=r"run the baseline \(train_baseline.json\) stage first"):
        TeacherBaselineInit(teachers, str(tmp_path / "baseline.pt"))(engine)


class _Slope(nn.Module):
    """Positive-class logit = 4 * slope * x[0]: slope -1 ranks every case wrongly (AUC 0), +1 perfectly (AUC 1)."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = nn.Parameter(torch.tensor(float(slope)))

    def forward(self, x):
        z = 4 * self.slope * x.reshape(x.shape[0], -1)[:, 0]
        return torch.stack([torch.zeros_like(z), z], 1)


def _premise(tmp_path, start: tuple[float, float], trained: tuple[float, float], premise_check: bool = True):
    teachers = GroupTeachers(teachers=[_Slope(s) for s in start])  # as initialised from "stage 0"
    items = [
        {"image": torch.tensor([[float(2 * (i % 2) - 1)]]), "label": torch.tensor(i % 2), "group": torch.tensor(i // 8)}
        for i in range(16)
    ]
    post = lambda d: {**d, "pred": torch.softmax(d["pred"], 0)}  # noqa: E731
    evaluator = GroupSupervisedEvaluator(
        device="cpu",
        val_data_loader=DataLoader(items, batch_size=16),
        network=teachers,
        prepare_batch=PrepareBatchExtraInput("group"),
        postprocessing=post,
    )
    trainer = Engine(lambda e, b: None)
    path = tmp_path / "teachers.pt"
    selector = GroupTeacherSelector(
        teachers, evaluator, str(path), criterion="auc", require_usable_threshold=False, premise_check=premise_check
    )
    selector.attach(trainer)
    trainer.state = SimpleNamespace(epoch=0, iteration=0)
    trainer.fire_event(Events.STARTED)  # the premise check's stage-0 pass
    trainer.state.epoch = 1
    with torch.no_grad():
        for t, s in zip(teachers.teachers, trained):
            t.slope.fill_(s)
    evaluator.run()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fire_event(Events.COMPLETED)
    nothing = [w for w in caught if "nothing to distil" in str(w.message)]
    assert len(nothing) == int(premise_check and trained == start)
    return json.loads(path.with_suffix(".json").read_text())


def test_premise_check_compares_each_teacher_with_stage0_on_its_own_group(tmp_path):
    record = _premise(tmp_path, start=(-1.0, 1.0), trained=(1.0, 1.0))
    premise = record["premise"]
    assert premise["checked"] and premise["metric"] == "auc" and premise["teachers_beating_stage0"] == [0]
    assert record["groups"]["0"]["auc_stage0"] == 0.0 and record["groups"]["0"]["auc_teacher"] == 1.0
    assert record["groups"]["1"]["auc_stage0"] == 1.0 and "something to distil" in premise["verdict"]


def test_premise_check_says_when_there_is_nothing_to_distil(tmp_path):
    record = _premise(tmp_path, start=(1.0, 1.0), trained=(1.0, 1.0))
    assert record["premise"]["teachers_beating_stage0"] == []
    assert record["premise"]["verdict"].startswith("FairDi has nothing to distil")
    record = _premise(tmp_path, start=(1.0, 1.0), trained=(1.0, 1.0), premise_check=False)
    assert record["premise"] == {"checked": False, "verdict": "premise check disabled"}
    assert "auc_stage0" not in record["groups"]["0"]


def test_student_starts_from_the_stage0_backbone_with_a_new_head(tmp_path):
    torch.manual_seed(0)
    stage0 = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
    stage0 = nn.ModuleDict({"body": stage0, "fc": nn.Linear(6, 2)})
    torch.save(stage0.state_dict(), tmp_path / "baseline.pt")
    engine = SimpleNamespace(state=SimpleNamespace(device="cpu"))
    for freeze in (False, True):
        torch.manual_seed(1)
        student = nn.ModuleDict(
            {"body": nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU()), "fc": nn.Linear(6, 2)}
        )
        head = student["fc"].weight.detach().clone()
        StudentBaselineInit(student, str(tmp_path / "baseline.pt"), head_name="fc", freeze_backbone=freeze)(engine)
        assert torch.equal(student["body"][0].weight, stage0["body"][0].weight)  # backbone from stage 0
        assert torch.equal(student["fc"].weight, head)  # new head: the student's own initialisation
        assert student["body"][0].weight.requires_grad is not freeze and student["fc"].weight.requires_grad
    with pytest.raises(ValueError, match="student_init: 'baseline'"):
        StudentBaselineInit(student, None, freeze_backbone=True)
    StudentBaselineInit(student, None)(engine)  # scratch: nothing loaded
