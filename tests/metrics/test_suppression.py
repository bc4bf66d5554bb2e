# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Primary and secondary suppression: nothing about a suppressed group is shown or derivable."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_fair.handlers import GroupClassificationMetricHandler
from monai_fair.metrics import (
    GroupClassificationMetric,
    compute_group_classification_metrics,
    compute_group_segmentation_metrics,
    suppress_groups,
)


@pytest.mark.parametrize(
    "counts, k, expected",
    [
        ([6, 40, 90], 10, [False, False, True]),  # primary + the smallest other group
        ([6, 40], 10, [False, False]),  # two groups, one small: only overall remains
        ([3, 4, 100, 200], 10, [False, False, False, True]),  # union of 3 + 4 < 10: one more group
        ([3, 30, 12, 40], 10, [False, True, False, True]),  # smallest other is group 2 (12)
        ([0, 50, 60], 10, [True, True, True]),  # an empty group hides nobody and is not hidden
        ([20, 30, 30], 10, [True, True, True]),
        ([2, 5], 1, [True, True]),
        ([12, 12, 5, 12], 10, [False, True, False, True]),  # ties: the lower id first
    ],
)
def test_suppress_groups_rules(counts, k, expected):
    assert suppress_groups(counts, k).tolist() == expected


def _two_groups():
    # group "tiny" (id 1): 6 samples, accuracy 1/6; group "big": 60 samples
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.integers(0, 2, 60), [1, 1, 1, 0, 0, 0]])
    s = np.concatenate([np.clip(0.3 * y[:60] + rng.random(60) * 0.6, 0, 1), [0.9, 0.1, 0.2, 0.3, 0.8, 0.7]])
    g = np.array([0] * 60 + [1] * 6)
    return s, y, g


def test_two_groups_one_small_only_overall_remains_and_nothing_named():
    s, y, g = _two_groups()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = compute_group_classification_metrics(
            s, y, g, group_names=["big", "tiny"], min_group_size=10, n_bootstrap=20, nan_policy="omit"
        )
    assert r["groups"] == {} and r["overall"]["n"] == 66
    assert r["suppression"] == {"min_group_size": 10, "reported_groups": 0, "suppressed_groups": 2}
    for k in ("auc_gap", "worst_group_auc", "worst_group_accuracy", "es_auc", "eodds", "demographic_parity"):
        assert math.isnan(r["fairness"][k]) and r["fairness_nan_reason"][k] == "fewer_than_2_reported_groups"
    text = json.dumps(r) + " ".join(str(w.message) for w in caught)
    assert "tiny" not in text and "big" not in text
    assert "0.1666" not in text  # the small group's accuracy (1/6) appears nowhere


def test_one_reported_group_is_not_a_worst_group():
    s, y, g = _two_groups()
    g = g.copy()
    g[:20] = 2  # groups: 0 (40), 1 (6, suppressed) -> smallest other (2: 20) is hidden too -> only group 0 left
    r = compute_group_classification_metrics(s, y, g, min_group_size=10)
    assert list(r["groups"]) == [0]
    assert math.isnan(r["fairness"]["worst_group_auc"]) and math.isnan(r["fairness"]["es_accuracy"])


def test_nan_warning_counts_a_suppressed_group_without_naming_it():
    d = np.array([0.5] * 12 + [0.7] * 12 + [np.nan, 0.2, 0.3])
    g = np.array([0] * 12 + [1] * 12 + [2] * 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = compute_group_segmentation_metrics(d, None, g, min_group_size=5, group_names=["a", "b", "secret"])
    msg = " ".join(str(w.message) for w in caught)
    assert "1 suppressed group(s)" in msg and "secret" not in msg and "group 2" not in msg
    assert list(r["groups"]) == [1]  # group 2 (3 images) and, by secondary suppression, group 0 (tie, lower id)


def test_handler_logs_only_reported_groups():
    s, y, g = _two_groups()
    batches = [
        {"pred": torch.tensor(np.stack([1 - s, s], 1)[i : i + 22]), "label": torch.tensor(y[i : i + 22]),
         "group": torch.tensor(g[i : i + 22])}
        for i in range(0, 66, 22)
    ]  # fmt: skip
    eng = Engine(lambda e, b: b)
    GroupClassificationMetricHandler(reduction="worst_group_auc", min_group_size=10).attach(eng, "wg")
    GroupClassificationMetricHandler(reduction=None, min_group_size=10).attach(eng, "all")
    eng.run(batches)
    assert math.isnan(eng.state.metrics["wg"]) and eng.state.metrics["all"]["groups"] == {}
    m = GroupClassificationMetric(reduction="auc_gap", min_group_size=5)  # both groups reported at k=5
    m(torch.tensor(s), torch.tensor(y), group=torch.tensor(g))
    ref = compute_group_classification_metrics(s, y, g)
    assert float(m.aggregate()) == pytest.approx(ref["fairness"]["auc_gap"])
