# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""NeuralCollapseHandler on a bare Ignite engine: JSON trajectory, PNGs, TensorBoard, hook and eval mode;
suppression of small groups (with secondary suppression) in every output."""

from __future__ import annotations

import json
import math

import pytest
import torch
from ignite.engine import Engine

from monai_fair.methods.neural_collapse import (
    NeuralCollapseHandler,
    classifier_from_linear,
    log_spaced_epochs,
)
from monai_fair.utils import LayerCatcher
from tests.methods.neural_collapse.nc_reference import compute_neural_collapse_reference


class _Net(torch.nn.Module):
    def __init__(self, out: int = 3) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, out)

    def forward(self, x):
        return self.head(self.body(x))


def _loader(n=60, c=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    y = torch.arange(n) % c
    g = (torch.arange(n) // 2) % 2
    return [
        {"image": x[i : i + 16], "label": y[i : i + 16, None].float(), "group": g[i : i + 16]} for i in range(0, n, 16)
    ]


@pytest.mark.parametrize("nc4_centres", ["two_pass", "previous"])
def test_handler_writes_trajectory_and_plots(tmp_path, nc4_centres):
    torch.manual_seed(0)
    net = _Net()
    loader = _loader()
    handler = NeuralCollapseHandler(
        net,
        "head",
        {"train": loader},
        tmp_path,
        num_classes=3,
        group_names=["F", "M"],
        epochs=[1, 3],
        nc4_centres=nc4_centres,
        per_metric_plots=nc4_centres == "two_pass",
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(engine, batch):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(batch["image"]), batch["label"].reshape(-1).long())
        loss.backward()
        opt.step()
        return loss.item()

    trainer = Engine(step)
    handler.attach(trainer)
    net.train()
    trainer.run(loader, max_epochs=3)
    assert net.training  # restored after the evaluations

    doc = json.loads((tmp_path / "nc_trajectory.json").read_text())
    assert [e["epoch"] for e in doc["evaluations"]] == [1, 3]
    last = doc["evaluations"][-1]["train"]
    assert set(last["groups"]) == {"F", "M"} and last["counts"] == {"F": [10, 10, 10], "M": [10, 10, 10]}
    assert 0.0 <= last["groups"]["F"]["f1"] <= 1.0 and 0.0 <= last["overall"]["accuracy"] <= 1.0

    # values equal the reference on features recomputed in eval mode
    net.eval()
    with torch.no_grad(), LayerCatcher(net, "head", capture="input") as hook:
        feats, ys, gs = [], [], []
        for b in loader:
            net(b["image"])
            feats.append(hook.pop())
            ys.append(b["label"].reshape(-1).long())
            gs.append(b["group"])
        w, bias = classifier_from_linear(net.head)
    ref = compute_neural_collapse_reference(torch.cat(feats), torch.cat(ys), w, bias, torch.cat(gs), num_classes=3)
    names = ("nc1", "nc2_etf_means", "nc3_self_duality") + (("nc4_agreement",) if nc4_centres == "two_pass" else ())
    for name in names:
        assert last["overall"][name] == pytest.approx(ref["overall"][name], rel=1e-5, abs=1e-8)
        assert last["groups"]["M"][name] == pytest.approx(ref["groups"][1][name], rel=1e-5, abs=1e-8)
    if nc4_centres == "previous":
        assert doc["evaluations"][0]["train"]["overall"]["nc4_agreement"] is None  # NaN is written as null

    plots = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"train_all_metrics.png", "train_summary.png"} <= plots
    if nc4_centres == "two_pass":
        assert {"train_nc1.png", "train_nc4_agreement.png", "train_f1.png"} <= plots
    assert all((tmp_path / "plots" / p).stat().st_size > 1000 for p in plots)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_single_logit_head_and_bad_layer(tmp_path):
    net = _Net(out=1)
    loader = _loader(c=2)
    with pytest.raises(ValueError, match="Linear layers are"):
        NeuralCollapseHandler(net, "fc", loader, tmp_path, num_classes=2, num_groups=2)
    handler = NeuralCollapseHandler(net, "head", loader, tmp_path, num_classes=2, num_groups=2, tensorboard=False)
    entry = handler.evaluate(epoch=1)
    assert set(entry["train"]["groups"]) == {"0", "1"}
    assert 0.0 <= entry["train"]["overall"]["nc4_agreement"] <= 1.0
    assert math.isnan(entry["train"]["overall"]["nc2_equiangular_means"])  # C = 2, documented


def test_log_spaced_epochs():
    assert log_spaced_epochs(1, 5) == [1]
    e = log_spaced_epochs(100, 8)
    assert e[0] == 1 and e[-1] == 100 and e == sorted(set(e)) and 6 <= len(e) <= 9


def _three_group_loader(sizes=(4, 30, 40), c=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    g = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    n = g.numel()
    x = torch.randn(n, 5, generator=gen)
    y = torch.arange(n) % c
    return [{"image": x[i : i + 16], "label": y[i : i + 16], "group": g[i : i + 16]} for i in range(0, n, 16)]


@pytest.mark.parametrize("sizes,shown", [((4, 30, 40), ["X"]), ((4, 30), [])])
def test_small_groups_never_appear(tmp_path, sizes, shown):
    """n < min_group_size is suppressed, plus secondary suppression (the smallest other group), in JSON, TensorBoard
    and plots; a suppressed group's name appears in no file the handler writes."""
    names = ["F", "M", "X"][: len(sizes)]
    torch.manual_seed(0)
    net = _Net(out=2)
    handler = NeuralCollapseHandler(
        net,
        "head",
        {"train": _three_group_loader(sizes)},
        tmp_path,
        num_classes=2,
        group_names=names,
        min_group_size=10,
    )
    entry = handler.evaluate(epoch=1)
    handler.finalize()
    row = entry["train"]
    assert sorted(row["groups"]) == shown and sorted(row["counts"]) == shown
    assert row["suppressed_groups"] == len(sizes) - len(shown)
    assert row["overall"]["n"] == sum(sizes)
    hidden = [n for n in names if n not in shown]
    doc = (tmp_path / "nc_trajectory.json").read_text()
    for name in hidden:
        assert f'"{name}"' not in doc
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path / "tensorboard")).Reload().Tags()["scalars"]
    assert tags and all(t.split("/")[-1] in ["overall", *shown] for t in tags)
    assert (tmp_path / "plots" / "train_summary.png").stat().st_size > 1000
