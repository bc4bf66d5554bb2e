# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairPrune: per-group empirical Fisher (vs. a per-sample autograd loop), saliency, pruning, patience."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from monai_fair.methods.snnl import FairPruneEngine, fairprune_saliency, fairprune_step, group_fisher_diagonal
from monai_fair.networks import SmallVGGNet


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, 8, 8, generator=g)
    y = torch.randint(0, 2, (10,), generator=g)
    grp = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    return x, y, grp


def test_fisher_matches_loop():
    torch.manual_seed(0)
    net = SmallVGGNet(channels=(4, 6)).eval()
    x, y, grp = _data()
    fisher, counts = group_fisher_diagonal(net, [(x[:6], y[:6], grp[:6]), (x[6:], y[6:], grp[6:])], num_groups=2)
    assert counts.tolist() == [3.0, 7.0]
    for gid in (0, 1):
        ref = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
        for i in torch.nonzero(grp == gid).flatten():
            net.zero_grad()
            nn.functional.cross_entropy(net(x[i : i + 1]), y[i : i + 1]).backward()
            for n, p in net.named_parameters():
                ref[n] += p.grad**2
        for key in ("features.0.weight", "features.4.weight", "classifier.2.weight"):
            assert torch.allclose(fisher[key][gid], ref[key] / counts[gid], atol=1e-7, rtol=1e-4)


def test_saliency_and_step():
    torch.manual_seed(0)
    net = SmallVGGNet(channels=(4, 6)).eval()
    x, y, grp = _data()
    fisher, _ = group_fisher_diagonal(net, [(x, y, grp)], num_groups=2)
    sal = fairprune_saliency(net, fisher, unprivileged=0, privileged=1, beta=0.2)
    w = net.classifier[2].weight
    ref = 0.5 * w.detach() ** 2 * (fisher["classifier.2.weight"][0] - 0.2 * fisher["classifier.2.weight"][1])
    assert torch.allclose(sal["classifier.2.weight"], ref)
    total = sum(m.weight.numel() for m in (net.features[0], net.features[4], net.classifier[2]))
    n = fairprune_step(net, sal, prune_ratio=0.1)
    assert n == int(0.1 * total)
    zeros = sum(int((m.weight == 0).sum()) for m in (net.features[0], net.features[4], net.classifier[2]))
    assert zeros == n
    flat = torch.cat([sal[k].flatten() for k in sal])
    pruned = torch.cat([(m.weight == 0).flatten() for m in (net.features[0], net.features[4], net.classifier[2])])
    assert flat[pruned].max() <= flat[~pruned].min()  # the smallest saliencies were pruned
    # a second step prunes 10% of the remaining weights, never re-pruning
    fisher, _ = group_fisher_diagonal(net, [(x, y, grp)], num_groups=2)
    n2 = fairprune_step(net, fairprune_saliency(net, fisher, 0, 1), prune_ratio=0.1)
    assert n2 == int(0.1 * (total - n))
    zeros2 = sum(int((m.weight == 0).sum()) for m in (net.features[0], net.features[4], net.classifier[2]))
    assert zeros2 == n + n2


def _engine(tmp_path, values, **kw):
    from monai.data import DataLoader
    from monai.transforms import Activationsd, AsDiscreted, Compose

    from monai_fair.engines import GroupSupervisedEvaluator

    torch.manual_seed(0)
    net = SmallVGGNet(channels=(4, 6)).eval()
    x, y, grp = _data()
    items = [{"image": x[i], "label": y[i], "group": grp[i]} for i in range(10)]
    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=2)])
    evaluator = GroupSupervisedEvaluator(
        device="cpu", val_data_loader=DataLoader(items, batch_size=5), network=net, postprocessing=post
    )
    engine = FairPruneEngine(
        net,
        [(x, y, grp)],
        evaluator,
        num_groups=2,
        prune_ratio=0.1,
        save_path=str(tmp_path / "m.pt"),
        history_path=str(tmp_path / "h.json"),
        **kw,
    )
    if values is not None:
        real, scripted = engine.evaluate, iter(values)

        def evaluate():
            real()  # the evaluator still runs (the unprivileged choice reads its buffer)
            f1, eo = next(scripted)
            return {"macro_f1": f1, "eodds_mean": eo}

        engine.evaluate = evaluate
    return net, engine


def _pruned_fraction(net):
    mods = (net.features[0], net.features[4], net.classifier[2])
    return sum(int((m.weight == 0).sum()) for m in mods) / sum(m.weight.numel() for m in mods)


def test_engine_patience_and_best_restored(tmp_path):
    # EOdds: best at iteration 1, then 2 stalls -> EarlyStopping stops after iteration 3 (patience 2)
    values = [(0.8, 0.5), (0.8, 0.4), (0.8, 0.45), (0.8, 0.6), (0.8, 0.7), (0.8, 0.1)]
    net, engine = _engine(tmp_path, values, patience=2, max_epochs=10, unprivileged=0, privileged=1)
    engine.run()
    hist = json.loads((tmp_path / "h.json").read_text())
    assert [h["iteration"] for h in hist["iterations"]] == [0, 1, 2, 3] and hist["best_iteration"] == 1
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert "classifier.2.weight" in state and not any(k.endswith("_mask") for k in state)
    assert abs(_pruned_fraction(net) - hist["iterations"][1]["pruned_fraction"]) < 1e-9


def test_engine_floor_and_group_choice(tmp_path):
    # iteration 2 has the lowest EOdds but lost 0.3 macro-F1: below the floor, iteration 1 is kept
    values = [(0.8, 0.5), (0.78, 0.4), (0.5, 0.05)]
    net, engine = _engine(tmp_path, values, patience=5, max_epochs=2, max_f1_drop=0.05)
    engine.run()
    hist = engine.summary
    assert [h["meets_floor"] for h in hist["iterations"]] == [True, True, False] and hist["best_iteration"] == 1
    # unprivileged = the group with the lower validation macro-F1 of the unpruned model (sklearn reference)
    from sklearn.metrics import f1_score

    torch.manual_seed(0)
    ref = SmallVGGNet(channels=(4, 6)).eval()
    x, y, grp = _data()
    with torch.no_grad():
        pred = ref(x).argmax(1)
    f1 = [f1_score(y[grp == k], pred[grp == k], average="macro") for k in (0, 1)]
    assert hist["unprivileged"] == int(np.argmin(f1)) and hist["privileged"] == [1 - hist["unprivileged"]]
