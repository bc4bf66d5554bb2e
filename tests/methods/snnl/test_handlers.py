# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""SNNL pruning rounds on in-memory data: driver + thin handler + FATE metric + EarlyStopping; floor; controls."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer
from monai_fair.methods.snnl import (
    ChannelPruningDriver,
    SNNLPruningHandler,
    channels_per_round,
    compute_fate,
    compute_scp_accuracy_fairness,
    scp_macro_f1,
    select_channels,
    stratified_batch_indices,
)
from monai_fair.networks import SmallVGGNet


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        grp, lab = i % 2, (i // 2) % 2
        img = torch.randn(3, 16, 16, generator=g) * 0.5 + lab * 0.8 + grp * 0.4
        items.append({"image": img, "label": torch.tensor(lab), "group": torch.tensor(grp)})
    return items


def _pretrain(net, data, steps=20):
    """A few SGD steps, so that the unpruned network is not degenerate (one class for everyone: EOdds 0, FATE
    undefined), as a trained model is not."""
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.stack([d["image"] for d in data]), torch.stack([d["label"] for d in data])
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()


def _engines(tmp_path, patience=1, finetune_epochs=1, max_rounds=3, with_test=False, pretrain=0, **driver_kw):
    torch.manual_seed(0)
    net = SmallVGGNet(channels=(4, 8, 12))
    data = _data()
    if pretrain:
        _pretrain(net, data, pretrain)
    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=2)])
    evaluator = GroupSupervisedEvaluator(
        device="cpu", val_data_loader=DataLoader(data, batch_size=16), network=net, postprocessing=post
    )
    score_loader = DataLoader(data, batch_sampler=stratified_batch_indices([int(d["group"]) for d in data], 16))
    trainer = GroupSupervisedTrainer(
        device="cpu",
        max_epochs=max_rounds * finetune_epochs,
        train_data_loader=DataLoader(data, batch_size=16, shuffle=True),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
        loss_function=torch.nn.CrossEntropyLoss(),
        postprocessing=post,
    )
    driver = ChannelPruningDriver(net, "features.8", score_loader, max_rounds=max_rounds, **driver_kw)
    handler = SNNLPruningHandler(
        driver,
        evaluator,
        finetune_epochs=finetune_epochs,
        patience=patience,
        num_groups=2,
        save_path=str(tmp_path / "m.pt"),
        history_path=str(tmp_path / "h.json"),
        test_evaluator=GroupSupervisedEvaluator(
            device="cpu", val_data_loader=DataLoader(_data(seed=1), batch_size=16), network=net, postprocessing=post
        )
        if with_test
        else None,
    )
    handler.attach(trainer)
    return net, trainer, handler, data


def _scripted(handler, f1s, eodds):
    """Replace the evaluator's figures by scripted (macro-F1, EOdds) values, FATE computed as the metric does."""
    values = iter(zip(f1s, eodds))
    base = {}

    def evaluate():
        f1, eo = next(values)
        if not base:
            base.update(f1=f1, eo=eo)
        return {"macro_f1": f1, "eodds_mean": eo, "fate": compute_fate(f1, eo, base["f1"], base["eo"])}

    handler.evaluate = evaluate


def test_rounds_and_artefacts(tmp_path):
    net, trainer, handler, data = _engines(
        tmp_path, n_per_round=2, patience=5, keep_unpruned_if_best=False, max_f1_drop=None, pretrain=4
    )
    trainer.run()
    assert trainer.state.epoch == 3
    hist = json.loads((tmp_path / "h.json").read_text())
    assert hist["rounds"][0]["eodds_mean"] > 0  # FATE is defined
    assert [h["round"] for h in hist["rounds"]] == [0, 1, 2, 3]
    pruned_all = [c for h in hist["rounds"] for c in h["pruned"]]
    assert len(set(pruned_all)) == 6  # never re-prunes a channel
    best = max(hist["rounds"][1:], key=lambda h: h["fate"])
    assert hist["best_round"] == best["round"]
    f1b, eob = hist["rounds"][0]["macro_f1"], hist["rounds"][0]["eodds_mean"]
    expected = (best["macro_f1"] - f1b) / f1b - (best["eodds_mean"] - eob) / eob
    assert abs(best["fate"] - expected) < 1e-9
    assert hist["settings"]["fairness_metric"].startswith("eodds_mean") and hist["settings"]["max_f1_drop"] is None
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert "features.8.weight" in state and "features.8.weight_mask" not in state
    zero = state["features.8.weight"].flatten(1).abs().sum(1) == 0
    assert sorted(torch.nonzero(zero).flatten().tolist()) == sorted(hist["pruned_channels"])
    assert len(hist["pruned_channels"]) == 2 * hist["best_round"]
    # the recorded round-0 figures are the metric's own on the unpruned model (independent reference: sklearn)
    from sklearn.metrics import f1_score

    torch.manual_seed(0)
    ref_net = SmallVGGNet(channels=(4, 8, 12))
    _pretrain(ref_net, data, 4)
    ref_net.eval()
    with torch.no_grad():
        probs = torch.softmax(ref_net(torch.stack([d["image"] for d in data])), 1)
    y = torch.stack([d["label"] for d in data])
    assert abs(f1b - f1_score(y, probs.argmax(1), average="macro")) < 1e-6


def test_patience_stops_early_and_keeps_unpruned(tmp_path):
    net, trainer, handler, _ = _engines(tmp_path, n_per_round=1, max_rounds=5, patience=1, keep_unpruned_if_best=True)
    _scripted(handler, [0.8, 0.8, 0.8], [0.2, 0.3, 0.3])  # round 1 is worse than the unpruned network
    trainer.run()
    assert trainer.state.epoch == 1
    assert handler.summary["best_round"] == 0 and handler.summary["pruned_channels"] == []


def test_floor_rejects_a_round_that_loses_accuracy(tmp_path):
    # the defect: FATE prefers round 1 (EOdds 0.2 -> 0.02 outweighs F1 0.88 -> 0.39) although F1 collapsed
    assert compute_fate(0.39, 0.02, 0.88, 0.2) > compute_fate(0.86, 0.15, 0.88, 0.2) > 0
    net, trainer, handler, _ = _engines(
        tmp_path, n_per_round=1, max_rounds=2, patience=2, keep_unpruned_if_best=False, max_f1_drop=0.05
    )
    _scripted(handler, [0.88, 0.39, 0.86], [0.2, 0.02, 0.15])
    trainer.run()
    hist = json.loads((tmp_path / "h.json").read_text())
    assert [h["meets_floor"] for h in hist["rounds"]] == [True, False, True]
    assert hist["best_round"] == 2 and len(hist["pruned_channels"]) == 2
    assert hist["settings"]["max_f1_drop"] == 0.05


def test_floor_falls_back_to_unpruned_when_no_round_is_eligible(tmp_path):
    net, trainer, handler, _ = _engines(
        tmp_path, n_per_round=1, max_rounds=3, patience=2, keep_unpruned_if_best=False, max_f1_drop=0.05
    )
    _scripted(handler, [0.88, 0.39, 0.5], [0.2, 0.02, 0.01])
    trainer.run()
    assert trainer.state.epoch == 2  # two ineligible rounds in a row: EarlyStopping (patience 2) ends the run
    s = handler.summary
    assert s["best_round"] == 0 and s["pruned_channels"] == [] and s["kept_because"].startswith("no pruned round")


@pytest.mark.parametrize("selection", ["none", "random"])
def test_controls_share_the_schedule(tmp_path, selection):
    net, trainer, handler, _ = _engines(
        tmp_path, n_per_round=2, max_rounds=2, patience=5, keep_unpruned_if_best=False, selection=selection, seed=3
    )
    trainer.run()
    hist = handler.summary
    assert [h["round"] for h in hist["rounds"]] == [0, 1, 2] and hist["selection"] == selection
    pruned = [h["pruned"] for h in hist["rounds"][1:]]
    if selection == "none":
        assert pruned == [[], []] and hist["pruned_channels"] == []
    else:
        rng = np.random.default_rng(3)
        first = select_channels(None, 2, [], 12, rng)
        assert pruned[0] == first and not set(pruned[1]) & set(first)


def test_select_channels():
    scores = torch.tensor([0.5, 0.1, 0.3, 0.2, 0.9])
    assert select_channels(scores, 2) == [1, 3]
    assert select_channels(scores, 2, exclude=[1]) == [2, 3]
    with pytest.raises(ValueError, match="only 1"):
        select_channels(scores, 2, exclude=[0, 1, 2, 3])


def test_scp_metrics_reference():
    from sklearn.metrics import f1_score

    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.1, 0.9]])
    y = torch.tensor([0, 1, 1, 1, 0, 0])
    g = torch.tensor([0, 0, 0, 1, 1, 1])
    res = compute_scp_accuracy_fairness(probs, y, g, num_groups=2)
    assert abs(res["macro_f1"] - f1_score(y, probs.argmax(1), average="macro")) < 1e-9
    # SCP mean form: group 0 TPR 1/2, FPR 0; group 1 TPR 1, FPR 1/2 -> |(1/2 + 0) - (1 + 1/2)| / 2 = 1/2
    assert abs(res["eodds_mean"] - 0.5) < 1e-9
    per_group = scp_macro_f1(probs, y, g, 2)
    for k in (0, 1):
        assert abs(float(per_group[k]) - f1_score(y[g == k], probs.argmax(1)[g == k], average="macro")) < 1e-9
    assert math.isclose(compute_fate(0.8, 0.1, 0.8, 0.2, 0.5), 0.25)


def test_bad_config():
    net = SmallVGGNet(channels=(4, 8))
    with pytest.raises(ValueError, match="prune all"):
        ChannelPruningDriver(net, "features.4", [], n_per_round=4, max_rounds=2)
    with pytest.raises(ValueError, match="score_loader"):
        ChannelPruningDriver(net, "features.4", None)
    with pytest.raises(ValueError, match="max_f1_drop"):
        ChannelPruningDriver(net, "features.4", [], max_f1_drop=-0.1)


def test_undefined_fate_is_not_eligible(tmp_path):
    # EOdds NaN (fewer than two groups reach min_group_size): FATE undefined, the round is never kept
    net, trainer, handler, _ = _engines(tmp_path, n_per_round=1, max_rounds=2, patience=5, keep_unpruned_if_best=False)
    _scripted(handler, [0.8, 0.8, 0.8], [0.2, float("nan"), 0.25])
    trainer.run()
    assert handler.summary["best_round"] == 2


def test_every_round_records_test_figures_rejected_rounds_included(tmp_path):
    net, trainer, handler, _ = _engines(
        tmp_path,
        n_per_round=1,
        max_rounds=2,
        patience=2,
        keep_unpruned_if_best=False,
        max_f1_drop=0.05,
        with_test=True,
        pretrain=4,  # test FATE is defined (the unpruned model is not degenerate on the test split)
    )
    _scripted(handler, [0.88, 0.39, 0.86], [0.2, 0.02, 0.15])  # validation: round 1 is rejected by the floor
    trainer.run()
    rounds = json.loads((tmp_path / "h.json").read_text())["rounds"]
    assert [r["meets_floor"] for r in rounds] == [True, False, True]
    for r in rounds:
        assert {"test_macro_f1", "test_eodds_mean", "test_fate"} <= set(r)
    assert rounds[0]["test_fate"] == 0.0
    f1b, eob = rounds[0]["test_macro_f1"], rounds[0]["test_eodds_mean"]
    assert eob > 0
    for r in rounds[1:]:  # test FATE is against the unpruned model's *test* figures
        assert math.isclose(r["test_fate"], compute_fate(r["test_macro_f1"], r["test_eodds_mean"], f1b, eob))


def test_fraction_per_round():
    net = SmallVGGNet(channels=(4, 64))
    driver = ChannelPruningDriver(net, "features.4", [], n_per_round=None, fraction_per_round=0.015, max_rounds=8)
    assert driver.n_per_round == 1  # max(1, round(0.96))
    assert channels_per_round(512, None, 0.014) == 7  # SCP's example: 7 of 512
    assert channels_per_round(512, 3, 0.5) == 3  # an explicit count wins
    with pytest.raises(ValueError, match="fraction_per_round must be in"):
        channels_per_round(64, None, 1.5)
    with pytest.raises(ValueError, match="n_per_round or fraction_per_round"):
        channels_per_round(64)


def test_degenerate_unpruned_model_leaves_fate_undefined(tmp_path):
    """EOdds 0 before pruning (one class predicted for everyone): FATE has no value (a floored denominator used to
    record values near -1e11), the rounds are ranked by EOdds, and the history says why."""
    assert math.isnan(compute_fate(0.6, 0.7, 0.33, 0.0)) and math.isnan(compute_fate(0.6, 0.7, 0.33, float("nan")))
    assert math.isclose(compute_fate(0.4, 0.0, 0.25, 0.0), 0.6)  # EOdds 0 before and after: the F1 term alone
    net, trainer, handler, _ = _engines(
        tmp_path, n_per_round=1, max_rounds=2, patience=2, keep_unpruned_if_best=False, max_f1_drop=0.05
    )
    _scripted(handler, [0.33, 0.6, 0.58], [0.0, 0.7, 0.8])
    trainer.run()
    hist = json.loads((tmp_path / "h.json").read_text())
    assert all(r["fate"] is None or math.isnan(r["fate"]) for r in hist["rounds"][1:]), hist["rounds"]
    # keep_unpruned_if_best=False: FATE's ranking as EO_b -> 0 is the EOdds ranking (round 1: 0.7 < 0.8)
    assert hist["best_round"] == 1 and len(hist["pruned_channels"]) == 1
    assert hist["kept_because"].startswith("FATE undefined") and "lowest EOdds" in hist["kept_because"]
    net, trainer, handler, _ = _engines(
        tmp_path, n_per_round=1, max_rounds=2, patience=2, keep_unpruned_if_best=True, max_f1_drop=0.05
    )
    _scripted(handler, [0.33, 0.6, 0.58], [0.0, 0.7, 0.8])
    trainer.run()
    hist = json.loads((tmp_path / "h.json").read_text())
    assert (
        hist["best_round"] == 0 and hist["pruned_channels"] == [] and "unpruned model is kept" in hist["kept_because"]
    )
