# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.handlers import from_engine

from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer, get_batch_group


def _loader(n: int = 12, groups: int = 3, batch_size: int = 4, key: str = "group") -> DataLoader:
    data = [{"image": torch.randn(3, 8, 8), "label": torch.tensor(i % 2), key: i % groups} for i in range(n)]
    return DataLoader(Dataset(data), batch_size=batch_size, shuffle=False)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))


def test_trainer_passes_group_to_loss_and_output():
    seen = []

    def loss(pred, label, group):
        seen.append(group.tolist())
        assert pred.shape[0] == label.shape[0] == group.shape[0]
        return torch.nn.functional.cross_entropy(pred, label)

    net = _net()
    trainer = GroupSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_loader(),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), 0.1),
        loss_function=loss,
        loss_takes_group=True,
    )
    trainer.run()
    assert seen == [[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]]
    groups = [int(g) for g in from_engine(["group"])(trainer.state.output)]
    assert groups == [2, 0, 1, 2]


def test_trainer_plain_loss_matches_monai():
    net = _net()
    trainer = GroupSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_loader(),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), 0.1),
        loss_function=torch.nn.CrossEntropyLoss(),
    )
    trainer.run()
    assert torch.isfinite(torch.as_tensor(trainer.state.output[0]["loss"]))


def test_evaluator_exposes_group_and_custom_key():
    evaluator = GroupSupervisedEvaluator(
        device="cpu", val_data_loader=_loader(key="sex_group"), network=_net(), group_key="sex_group"
    )
    evaluator.run()
    _, _, groups = from_engine(["pred", "label", "sex_group"])(evaluator.state.output)
    assert [int(g) for g in groups] == [2, 0, 1, 2]


def test_missing_group_key_names_the_key():
    evaluator = GroupSupervisedEvaluator(device="cpu", val_data_loader=_loader(key="other"), network=_net())
    with pytest.raises(KeyError, match="'group'"):
        evaluator.run()


@pytest.mark.parametrize("bad", [torch.tensor([0.0, float("nan")]), torch.tensor([0, -1]), torch.tensor([0.5, 1.0])])
def test_bad_group_values_raise(bad):
    with pytest.raises(ValueError, match="group"):
        get_batch_group({"group": bad}, "group")
