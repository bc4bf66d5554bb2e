# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The privacy probe (fresh linear / MLP probes, validation -> test) and the comparison report writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from torch import nn

from monai_fair.methods.apple import (
    LatentPerturber,
    PerturbedSegmentor,
    collect_pooled_latents,
    fit_probe,
    privacy_probe,
    run_privacy_probe,
    write_apple_comparison,
)


def _features(n, shift, seed):
    gen = torch.Generator().manual_seed(seed)
    group = (torch.arange(n) % 5 == 0).long()  # 20 % group 1
    x = torch.randn(n, 6, generator=gen)
    x[:, 2] += shift * group  # the group lives in one feature
    return x, group


def test_probe_recovers_a_group_signal_and_not_noise():
    fit, score = _features(80, 4.0, 0), _features(60, 4.0, 1)
    res = privacy_probe(*fit, *score, 2, n_bootstrap=100)
    for kind in ("linear", "mlp"):
        assert res[kind]["auc"] > 0.95 and res[kind]["balanced_accuracy"] > 0.9, res[kind]
        lo, hi = res[kind]["ci"]["auc"]
        assert lo <= res[kind]["auc"] <= hi
    # independent reference for the scoring: the fitted linear probe's scores through sklearn
    probe = fit_probe(*fit, 2, kind="linear")
    with torch.no_grad():
        p = torch.softmax(probe(score[0]), 1)[:, 1].numpy()
    assert res["linear"]["auc"] == pytest.approx(roc_auc_score(score[1].numpy(), p))
    assert res["linear"]["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(score[1].numpy(), p > 0.5))
    noise = privacy_probe(*_features(80, 0.0, 2), *_features(400, 0.0, 3), 2, kinds=("linear",), n_bootstrap=0)
    assert abs(noise["linear"]["auc"] - 0.5) < 0.1
    # a group smaller than min_group_size suppresses every figure
    small = privacy_probe(*fit, *score, 2, kinds=("linear",), min_group_size=13)
    assert small["linear"]["suppressed"] and np.isnan(small["linear"]["auc"])


def test_run_privacy_probe_reads_before_and_after_latents(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 2, 1))
    wrapped = PerturbedSegmentor(net, LatentPerturber(3), latent_module="0")
    gen = torch.Generator().manual_seed(0)
    group = torch.tensor([0, 1] * 12)
    image = torch.rand(24, 1, 4, 4, generator=gen) + 2.0 * group.view(-1, 1, 1, 1)
    loader = [{"image": image[i : i + 8], "group": group[i : i + 8]} for i in range(0, 24, 8)]
    before, g = collect_pooled_latents(wrapped, loader, perturbed=False)
    assert before.shape == (24, 6) and torch.equal(g, group)
    ref = net[0](image)
    torch.testing.assert_close(before[:, :3], ref.mean((2, 3)))
    wrapped.perturbers[0] = _Eraser()  # a perturber that erases the latent: f_p = 0
    after, _ = collect_pooled_latents(wrapped, loader, perturbed=True)
    assert torch.equal(after, torch.zeros_like(after))
    assert wrapped.enabled  # the switch is restored
    res = run_privacy_probe(wrapped, loader, loader, 2, kinds=("linear",), n_bootstrap=20)
    assert res["before"]["linear"]["auc"] == pytest.approx(1.0)
    assert res["after"]["linear"]["auc"] == pytest.approx(0.5)  # constant scores: chance
    # the report writer: probe rows next to the fairness rows, with their intervals
    report = {"overall": {"dice": 0.8, "iou": 0.7}, "groups": {"F": {"dice": 0.7}, "M": {"dice": 0.9}}}
    report["fairness"] = {"dice_gap": 0.2, "es_dice": 0.7}
    for stage in ("before", "after"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "report.json").write_text(json.dumps(report))
    out = write_apple_comparison(tmp_path / "before", tmp_path / "after", tmp_path, probe=res)
    row = out["probe/linear/auc"]
    assert row["before"] == pytest.approx(1.0) and row["change"] == pytest.approx(-0.5)
    assert len(row["after_ci"]) == 2 and "bootstrap" in row["ci_method"]
    saved = json.loads((tmp_path / "apple_comparison.json").read_text())
    assert saved["probe_protocol"]["score"] == "test latents" and saved["dice_gap"]["change"] == 0.0
    assert "| probe/linear/auc | 1.0000" in (tmp_path / "apple_comparison.md").read_text()


class _Eraser(nn.Module):
    def forward(self, f):
        return f * 0
