# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The fairness trial's APPLE arms: ``apple`` and the ``apple_beta0`` control are paired with APPLE's own deployed
model (``apple_deployed``, the same training run evaluated with the perturbers absent), not with ``erm_seg``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monai_fair.trial.arms import ARMS, resolve_arms
from monai_fair.trial.report import _paired_comparisons, _vs
from monai_fair.trial.runner import plan_runs
from tests.conftest import BUNDLES_DIR


def test_apple_arms_bring_their_deployed_reference_and_plan_its_evaluation(tmp_path):
    arms = resolve_arms(["apple", "apple_beta0"], "segmentation")
    assert [a.name for a in arms] == ["erm_seg", "apple", "apple_beta0", "apple_deployed"]
    assert ARMS["apple"].reference == ARMS["apple_beta0"].reference == "apple_deployed"
    assert ARMS["apple_deployed"].recipe == "apple" and ARMS["apple_beta0"].overrides == {"beta": 0.0}
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": [], "test": []}))
    runs = {r.recipe.name: r for r in plan_runs(arms, [0], datalist, tmp_path / "out", BUNDLES_DIR)}
    assert set(runs) == {"erm_seg", "apple", "apple_beta0"}  # the deployed model costs no training of its own
    evals = {s.tag: s for s in runs["apple"].eval_steps}
    assert set(evals) == {"model", "base_model"}
    assert evals["base_model"].overrides["trial_checkpoint"].endswith("models/base_model.pt")
    assert [p.name for p in evals["base_model"].config_files][:2] == ["train.json", "evaluate_deployed.json"]
    assert runs["apple_beta0"].train_steps[0].overrides["beta"] == 0.0


def test_apple_is_compared_with_its_deployed_model_in_the_report():
    rng = np.random.default_rng(0)
    n = 40
    group = np.repeat([0, 1], n // 2)
    deployed = rng.uniform(0.5, 0.9, n)

    def entry(dice):
        return {"test": {"dice": dice, "iou": dice / (2 - dice)}}

    data = {
        "erm_seg": {0: entry(rng.uniform(0.5, 0.9, n))},
        "apple_deployed": {0: entry(deployed)},
        "apple": {0: entry(np.clip(deployed + 0.05 * (group == 0), 0, 1))},  # lifts group 0 only
        "apple_beta0": {0: entry(deployed)},
    }
    arms = resolve_arms(["apple", "apple_beta0"], "segmentation")
    ref = arms[0]
    stats = dict(min_group_size=5, n_bootstrap=50, ci=0.95, alpha=0.05)
    comp = _paired_comparisons(data, arms, ref, "segmentation", ["raw"], None, group, ["F", "M"], stats)
    assert comp["apple"]["reference"] == comp["apple_beta0"]["reference"] == "apple_deployed"
    assert comp["apple_deployed"]["reference"] == "erm_seg"
    dice = next(f for f in comp["apple"]["raw"]["figures"] if f["figure"] == "dice" and f["scope"] == "overall")
    assert dice["difference"] == pytest.approx(0.025, abs=1e-9)  # against the deployed model, not against ERM
    beta0 = next(f for f in comp["apple_beta0"]["raw"]["figures"] if f["figure"] == "dice" and f["scope"] == "overall")
    assert beta0["difference"] == pytest.approx(0.0, abs=1e-12)
    assert _vs({"reference": "apple_deployed"}, {"reference": "erm_seg"}) == " (vs apple_deployed)"
    assert _vs({"reference": "erm_seg"}, {"reference": "erm_seg"}) == ""
