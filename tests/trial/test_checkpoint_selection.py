# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness-aware checkpoint selection: the criteria on hand-made histories and the handler's files."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from monai_fair.handlers import FairCheckpointSelector
from monai_fair.handlers.checkpoint_selection import pareto_front, select_checkpoint

HIST = [  # (overall, worst) per epoch
    (0.70, 0.50),
    (0.80, 0.55),
    (0.90, 0.52),  # best overall
    (0.78, 0.62),  # best worst-group
    (0.86, 0.60),  # closest to the utopia (0.90, 0.62): distance 0.0447 vs 0.1 (epoch 3), 0.12 (epoch 2)
    (float("nan"), 0.99),  # NaN: never chosen
]


def _hist(points):
    return [{"epoch": i + 1, "overall": o, "worst": w} for i, (o, w) in enumerate(points)]


def test_criteria_by_hand():
    h = _hist(HIST)
    assert select_checkpoint(h, "worst_group") == 3
    assert select_checkpoint(h, "dto") == 4
    utopia = (0.90, 0.62)
    dists = [math.hypot(utopia[0] - o, utopia[1] - w) for o, w in HIST[:5]]
    assert min(range(5), key=dists.__getitem__) == 4
    assert pareto_front(h) == {2, 3, 4}
    # ties on the worst group: the larger overall wins (MEDFAIR's minimax Pareto choice)
    assert select_checkpoint(_hist([(0.7, 0.6), (0.8, 0.6), (0.75, 0.6)]), "worst_group") == 1
    assert select_checkpoint(_hist([(float("nan"), 0.5)]), "dto") is None
    with pytest.raises(ValueError):
        select_checkpoint(h, "best")


def _engine(epoch, overall, worst):
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch, metrics={"val_auc": overall, "val_worst": worst}))


@pytest.mark.parametrize("criterion,expected_epoch", [("worst_group", 4), ("dto", 5)])
def test_handler_keeps_the_chosen_weights(tmp_path, criterion, expected_epoch):
    net = torch.nn.Linear(2, 1)
    sel = FairCheckpointSelector(tmp_path, {"model": net}, criterion, "val_auc", "val_worst")
    for epoch, (o, w) in enumerate(HIST, 1):
        with torch.no_grad():
            net.weight.fill_(epoch)  # the weights identify the epoch
        sel(_engine(epoch, o, w))
    state = torch.load(tmp_path / f"model_{criterion}.pt", weights_only=True)
    assert float(state["weight"][0, 0]) == expected_epoch
    rec = json.loads((tmp_path / f"model_{criterion}.pt.json").read_text())
    assert rec["chosen_epoch"] == expected_epoch and len(rec["history"]) == len(HIST)
    if criterion == "dto":  # only the Pareto candidates are kept on disk
        kept = sorted(p.name for p in tmp_path.glob(".model_dto.pt.candidate_*.pt"))
        assert kept == [f".model_dto.pt.candidate_{i}.pt" for i in (2, 3, 4)]
    # a new selector on the same folder continues the history (resumed training)
    again = FairCheckpointSelector(tmp_path, {"model": net}, criterion, "val_auc", "val_worst")
    assert len(again.history) == len(HIST)


def test_handler_dto_changes_its_mind_when_the_utopia_moves(tmp_path):
    net = torch.nn.Linear(1, 1)
    sel = FairCheckpointSelector(tmp_path, {"model": net}, "dto", "val_auc", "val_worst")
    # utopia after epoch 2: (0.9, 0.62) -> distances 0.12, 0.10: epoch 2; epoch 3 moves it to (0.95, 0.62) ->
    # 0.13, 0.15, 0.32: back to epoch 1, whose weights were kept on disk as a Pareto candidate
    for epoch, (o, w) in enumerate([(0.9, 0.5), (0.8, 0.62), (0.95, 0.3)], 1):
        with torch.no_grad():
            net.weight.fill_(epoch)
        sel(_engine(epoch, o, w))
        chosen = float(torch.load(tmp_path / "model_dto.pt", weights_only=True)["weight"][0, 0])
        assert chosen == {1: 1, 2: 2, 3: 1}[epoch]


def test_handler_missing_metric(tmp_path):
    sel = FairCheckpointSelector(tmp_path, {"model": torch.nn.Linear(1, 1)})
    with pytest.raises(KeyError, match="val_worst_group_auc"):
        sel(SimpleNamespace(state=SimpleNamespace(epoch=1, metrics={"val_auc": 0.5})))


def test_pareto_plot_takes_zero_width_and_missing_intervals(tmp_path):
    """A zero-difference arm (per-group thresholds leave AUC unchanged) has a zero-width interval that can sit a
    rounding error beside its point, and a figure may have no interval: the plot is still written (it used to stop
    the trial's report with matplotlib's "'xerr' must not contain negative values")."""
    from monai_fair.trial.report import _error_bar, plot_pareto

    assert _error_bar(1e-17, [0.0, 0.0]) == [[1e-17], [0.0]]
    assert _error_bar(0.0, [1e-17, 2e-17]) == [[0.0], [2e-17]]
    assert _error_bar(0.1, None) == [[0.0], [0.0]] and _error_bar(0.1, [float("nan"), 0.3])[0] == [0.0]
    rows = [
        {"arm": "thr", "figure": f, "difference": d, "ci": ci}
        for f, d, ci in (("auc", 0.0, [1e-17, 1e-17]), ("worst_group_auc", 0.0, None), ("auc_gap", 0.0, [0.0, 0.0]))
    ] + [{"arm": "thr", "figure": "eodds", "difference": -0.5, "ci": [float("nan"), float("nan")]}]
    report = {"task": "classification", "reference": "erm", "headline": rows, "ci_level": 0.95}
    assert plot_pareto(report, tmp_path / "pareto.png").is_file()
