# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairPrune: per-group empirical Fisher (vs. a per-sample autograd loop), saliency, pruning, patience."""

from __future__ import annotations

import torch
from torch import nn

from monai_fair.methods.snnl import fairprune_saliency, fairprune_step, group_fisher_diagonal, run_fairprune
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


def test_patience_and_best_restored():
    torch.manual_seed(0)
    net = SmallVGGNet(channels=(4, 6)).eval()
    x, y, grp = _data()
    values = iter([0.5, 0.4, 0.45, 0.6, 0.7, 0.1])  # best at iteration 1, then 2 stalls -> stop (patience 2)
    hist = run_fairprune(
        net,
        [(x, y, grp)],
        lambda m: next(values),
        num_groups=2,
        unprivileged=0,
        privileged=1,
        prune_ratio=0.1,
        patience=2,
        max_iterations=10,
    )
    assert [h["iteration"] for h in hist] == [0, 1, 2, 3]
    zeros = sum(int((m.weight == 0).sum()) for m in (net.features[0], net.features[4], net.classifier[2]))
    assert (
        abs(
            zeros / hist[1]["pruned_fraction"]
            - sum(m.weight.numel() for m in (net.features[0], net.features[4], net.classifier[2]))
        )
        < 1
    )
