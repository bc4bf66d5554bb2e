# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""SNNLChannelPruningHandler on in-memory data: rounds, FATE, stopping, best-round restore, saved artefacts."""

from __future__ import annotations

import json

import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer
from monai_fair.methods.snnl import SNNLChannelPruningHandler, macro_f1_eodds, stratified_batch_indices
from monai_fair.networks import SmallVGGNet


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        grp, lab = i % 2, (i // 2) % 2
        img = torch.randn(3, 16, 16, generator=g) * 0.5 + lab * 0.8 + grp * 0.4
        items.append({"image": img, "label": torch.tensor(lab), "group": torch.tensor(grp)})
    return items


def _engines(tmp_path, **kwargs):
    torch.manual_seed(0)
    net = SmallVGGNet(channels=(4, 8, 12))
    data = _data()
    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=2)])
    evaluator = GroupSupervisedEvaluator(
        device="cpu", val_data_loader=DataLoader(data, batch_size=16), network=net, postprocessing=post
    )
    score_loader = DataLoader(data, batch_sampler=stratified_batch_indices([int(d["group"]) for d in data], 16))
    trainer = GroupSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=DataLoader(data, batch_size=16, shuffle=True),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
        loss_function=torch.nn.CrossEntropyLoss(),
        postprocessing=post,
    )
    pruner = SNNLChannelPruningHandler(
        net,
        "features.8",
        score_loader,
        evaluator,
        num_groups=2,
        save_path=str(tmp_path / "m.pt"),
        history_path=str(tmp_path / "h.json"),
        **kwargs,
    )
    pruner.attach(trainer)
    return net, trainer, pruner


def test_rounds_and_artefacts(tmp_path):
    net, trainer, pruner = _engines(tmp_path, n_per_round=2, max_rounds=3, patience=5, keep_unpruned_if_best=False)
    trainer.run()
    assert trainer.state.epoch == 3  # max_epochs set to max_rounds * finetune_epochs
    hist = json.loads((tmp_path / "h.json").read_text())
    assert [h["round"] for h in hist["rounds"]] == [0, 1, 2, 3]
    pruned_all = [c for h in hist["rounds"] for c in h["pruned"]]
    assert len(set(pruned_all)) == 6  # never re-prunes a channel
    best = max(hist["rounds"][1:], key=lambda h: h["fate"])
    assert hist["best_round"] == best["round"]
    f1b, eob = hist["rounds"][0]["macro_f1"], hist["rounds"][0]["eodds"]
    expected = (best["macro_f1"] - f1b) / f1b - (best["eodds"] - eob) / max(eob, 1e-12)
    assert abs(best["fate"] - expected) < 1e-9
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert "features.8.weight" in state and "features.8.weight_mask" not in state
    zero = state["features.8.weight"].flatten(1).abs().sum(1) == 0
    assert sorted(torch.nonzero(zero).flatten().tolist()) == sorted(hist["pruned_channels"])
    assert len(hist["pruned_channels"]) == 2 * hist["best_round"]


def test_patience_stops_early(tmp_path):
    net, trainer, pruner = _engines(tmp_path, n_per_round=1, max_rounds=5, patience=1, fate_lambda=1.0)
    pruner.fate = lambda f1, eo: -1.0  # every round is worse than the unpruned network
    trainer.run()
    assert trainer.state.epoch == 1
    assert pruner.summary["best_round"] == 0 and pruner.summary["pruned_channels"] == []


def test_macro_f1_eodds_reference():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.1, 0.9]])
    y = torch.tensor([0, 1, 1, 1, 0, 0])
    g = torch.tensor([0, 0, 0, 1, 1, 1])
    f1, eo = macro_f1_eodds(probs, y, g, num_groups=2)
    from sklearn.metrics import f1_score

    assert abs(f1 - f1_score(y, probs.argmax(1), average="macro")) < 1e-9
    # group 0: TPR 1/2, FPR 0; group 1: TPR 1, FPR 1/2 -> |dTPR + dFPR|/2 = 1/2
    assert abs(eo - 0.5) < 1e-9


def test_bad_config():
    net = SmallVGGNet(channels=(4, 8))
    with pytest.raises(ValueError, match="prune all"):
        SNNLChannelPruningHandler(net, "features.4", [], None, n_per_round=4, max_rounds=2)
