# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Channel scoring (vectorised == per-channel), masking (output exactly zero) and physical removal (same outputs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_fair.methods.snnl import (
    compute_snnl,
    mask_channels,
    pruned_channels,
    remove_channels,
    score_channels_snnl,
    stratified_batch_indices,
)
from monai_fair.networks import SmallVGGNet


def _net(seed=0):
    torch.manual_seed(seed)
    net = SmallVGGNet(spatial_dims=2, in_channels=3, num_classes=3, channels=(6, 8, 10))
    net.train()
    with torch.no_grad():  # non-trivial BN running statistics
        for _ in range(3):
            net(torch.randn(8, 3, 16, 16))
    return net.eval()


def test_scores_equal_per_channel_loop_and_chunks():
    net = _net()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(7, 3, 16, 16, generator=g), torch.tensor([0, 1, 0, 1, 1, 0, 2])) for _ in range(2)]
    scores = score_channels_snnl(net, "features.4", batches, temperature=0.7, chunk_size=3)
    # reference: per channel, per batch, textbook SNNL of the flattened channel map, averaged over valid anchors
    acts = []
    net.features[4].register_forward_hook(lambda m, i, o: acts.append(o))
    for x, _ in batches:
        net(x)
    for c in range(8):
        vals = [compute_snnl(a[:, c], gb, temperature=0.7)[0] for a, (_, gb) in zip(acts, batches)]
        # both batches have 6 valid anchors (group 2 is a singleton), so the mean of means is the anchor mean
        assert abs(float(scores[c]) - float(torch.stack(vals).mean())) < 1e-5


def test_stratified_batches_proportional_and_fixed():
    groups = [0] * 60 + [1] * 20
    b1 = stratified_batch_indices(groups, 16, seed=3)
    assert b1 == stratified_batch_indices(groups, 16, seed=3)
    assert sorted(i for b in b1 for i in b) == list(range(80))
    for b in b1:
        n1 = sum(groups[i] for i in b)
        assert 3 <= n1 <= 5  # 16 * 20/80 = 4 per batch
    assert len(stratified_batch_indices(groups, 16, num_batches=2)) == 2


def test_masked_channel_output_exactly_zero_and_persists():
    net = _net()
    net.train()
    mask_channels(net, "features.4", [1, 5])
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x = torch.randn(6, 3, 16, 16)
    for _ in range(3):  # fine-tuning does not revive the channels
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 0, 1, 2])).backward()
        opt.step()
    mask_channels(net, "features.4", [2])  # second round, masks accumulate
    outs = {}
    for name in ("4", "5", "6"):  # conv, BN, ReLU outputs
        net.features[int(name)].register_forward_hook(lambda m, i, o, n=name: outs.__setitem__(n, o))
    for mode in (True, False):
        net.train(mode)
        net(x)
        for n in ("4", "5", "6"):
            assert torch.all(outs[n][:, [1, 2, 5]] == 0), (n, mode)
            assert outs[n][:, 0].abs().sum() > 0
    assert pruned_channels(net, "features.4") == [1, 2, 5]


@pytest.mark.parametrize("layer", ["features.0", "features.4", "features.8"])
def test_physical_removal_same_outputs(layer):
    net = _net()
    mask_channels(net, layer, [0, 3])
    x = torch.randn(5, 3, 16, 16)
    ref = net(x)
    n_before = sum(p.numel() for p in net.parameters())
    remove_channels(net, layer, example_input=x)
    assert net.get_submodule(layer).out_channels == {"features.0": 4, "features.4": 6, "features.8": 8}[layer]
    assert sum(p.numel() for p in net.parameters()) < n_before
    assert torch.allclose(net(x), ref, atol=1e-5)


def test_removal_before_flatten_linear():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(20, 3),
    ).eval()
    mask_channels(net, "0", [1, 4])
    x = torch.randn(4, 2, 8, 8)
    ref = net(x)
    remove_channels(net, "0", example_input=x)
    assert net[5].in_features == 12 and torch.allclose(net(x), ref, atol=1e-6)


def test_removal_refused_on_branching():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            h = self.a(x)
            return self.b(h) + h

    net = Res()
    mask_channels(net, "a", [0])
    with pytest.raises(RuntimeError, match="branching"):
        remove_channels(net, "a", example_input=torch.randn(2, 4, 5, 5))


def test_bad_layer_names():
    net = _net()
    with pytest.raises(ValueError, match="not found"):
        mask_channels(net, "features.99", [0])
    with pytest.raises(TypeError, match="Conv"):
        mask_channels(net, "features.5", [0])
    with pytest.raises(ValueError, match="out of range"):
        mask_channels(net, "features.0", [6])
    with pytest.raises(ValueError, match="no anchor"):
        score_channels_snnl(net, "features.0", [(torch.randn(2, 3, 16, 16), torch.tensor([0, 1]))])
