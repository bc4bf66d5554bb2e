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


def test_paired_with_deployed_headline(tmp_path):
    """The headline pairs APPLE with the deployed model case by case (group names in the CSVs)."""
    from monai_fair.methods.apple import HEADLINE_FIGURES, paired_with_deployed

    rng = np.random.default_rng(0)
    n = 40
    names = np.where(np.arange(n) % 2 == 0, "F", "M")
    dice_b = rng.uniform(0.5, 0.9, n)
    dice_a = dice_b + np.where(names == "F", 0.1, 0.0)  # APPLE lifts F only: the gap shrinks by 0.1

    def write(path, dice):
        rows = ["case_id,image,dice,iou,group"] + [
            f"c{i},img{i},{d},{d / (2 - d)},{g}" for i, (d, g) in enumerate(zip(dice, names))
        ]
        path.write_text("\n".join(rows) + "\n")
        return path

    dep, app = write(tmp_path / "dep.csv", dice_b), write(tmp_path / "app.csv", dice_a)
    res = paired_with_deployed(dep, app, ["F", "M"], min_group_size=5, n_bootstrap=100)
    assert list(res["headline"]) == list(HEADLINE_FIGURES)
    wg = res["headline"]["worst_group_dice"]
    assert (
        wg["difference"] == pytest.approx(wg["other"] - wg["base"]) and wg["ci"][0] <= wg["difference"] <= wg["ci"][1]
    )
    gap_b = abs(dice_b[names == "F"].mean() - dice_b[names == "M"].mean())
    gap_a = abs(dice_a[names == "F"].mean() - dice_a[names == "M"].mean())
    assert res["headline"]["dice_gap"]["difference"] == pytest.approx(gap_a - gap_b)
    write(tmp_path / "other.csv", dice_a[::-1])
    (tmp_path / "other.csv").write_text((tmp_path / "other.csv").read_text().replace("c0,", "x0,"))
    with pytest.raises(ValueError, match="same cases"):
        paired_with_deployed(dep, tmp_path / "other.csv", ["F", "M"])
    with pytest.raises(ValueError, match="not among"):
        paired_with_deployed(dep, app, ["A", "B"])
