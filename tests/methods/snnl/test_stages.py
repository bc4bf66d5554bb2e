# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The SNNL bundle's fine-tuning schedule (:mod:`monai_fair.methods.snnl.stages`): optimiser, step decay restarting
every round, class-balanced sampler."""

from __future__ import annotations

import pytest
import torch

from monai_fair.methods.snnl import RoundStepDecay, finetune_optimizer, finetune_sampler


def test_round_step_decay_restarts_every_round():
    decay = RoundStepDecay(epochs_per_round=6, step=3, gamma=0.1)
    assert [decay(e) for e in range(12)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1] * 2)
    assert [RoundStepDecay(2)(e) for e in range(4)] == [1.0] * 4  # no step: constant
    net = torch.nn.Linear(2, 2)
    opt = finetune_optimizer(net.parameters(), "adam", lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)
    lrs = []
    for _ in range(7):  # stepped once per epoch, as MONAI's LrScheduleHandler(epoch_level=True) does
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-3])
    with pytest.raises(ValueError, match="gamma"):
        RoundStepDecay(2, 1, gamma=0.0)


def test_finetune_optimizer_regimes():
    net = torch.nn.Linear(2, 2)
    assert isinstance(finetune_optimizer(net.parameters(), "adam"), torch.optim.Adam)
    sgd = finetune_optimizer(net.parameters(), "sgd", lr=0.01, weight_decay=1e-5)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    with pytest.raises(ValueError, match="rmsprop"):
        finetune_optimizer(net.parameters(), "rmsprop")


def test_class_balanced_sampler_draws_classes_equally():
    data = [{"label": int(i < 10)} for i in range(100)]  # 10 % positives
    idx = list(finetune_sampler(data, "class_balanced", seed=0))
    drawn = torch.tensor([data[i]["label"] for i in idx], dtype=torch.float)
    assert len(drawn) == 100 and 0.35 < float(drawn.mean()) < 0.65
    assert list(finetune_sampler(data, "class_balanced", seed=0)) == idx  # seeded
    assert finetune_sampler(data, "shuffle") is None
