# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Validation-fitted decision thresholds, pooled and per group (:mod:`monai_fair.methods.group_thresholds`), against
sklearn's ROC curve."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from monai_fair.methods.group_thresholds import apply_group_thresholds, fit_group_thresholds, fit_threshold


def test_thresholds_against_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 150
        y, g = rng.integers(0, 2, n), rng.integers(0, 3, n)
        s = np.round(rng.random(n) * 0.6 + 0.3 * y - 0.1 * g + 0.1, 2)  # ties on purpose
        fpr, tpr, th = roc_curve(y, s)
        assert fit_threshold(s, y) == th[np.argmax(tpr - fpr)]
        fit = fit_group_thresholds(s, y, g, criterion="youden")
        for k in range(3):
            fpr, tpr, th = roc_curve(y[g == k], s[g == k])
            assert fit["thresholds"][k] == th[np.argmax(tpr - fpr)]
        fit = fit_group_thresholds(s, y, g, criterion="equal_tpr")
        tau = fit["target_tpr"]
        assert tau == np.mean(s[y == 1] >= fit_threshold(s, y))
        for k in range(3):
            pos = s[(g == k) & (y == 1)]
            ok = [c for c in np.unique(pos) if np.mean(pos >= c) >= tau]
            assert fit["thresholds"][k] == max(ok)  # the largest threshold reaching the target TPR
    dec = apply_group_thresholds([0.2, 0.6, 0.6], [0, 0, 1], [0.5, 0.7])
    assert dec.tolist() == [0, 1, 0]


def test_thresholds_unfittable_group_and_errors():
    s = np.array([0.1, 0.9, 0.4, 0.8, 0.3])
    y = np.array([0, 1, 0, 1, 1])
    g = np.array([0, 0, 0, 0, 1])  # group 1 has no negative: keeps the pooled threshold
    fit = fit_group_thresholds(s, y, g)
    assert fit["fitted"].tolist() == [True, False] and fit["thresholds"][1] == fit["pooled_threshold"]
    assert fit_threshold([0.2, 0.3], [1, 1]) == 0.5
    with pytest.raises(ValueError, match="0/1"):
        fit_threshold([0.2, 0.3], [0, 2])
    with pytest.raises(ValueError, match="criterion|Unsupported"):
        fit_group_thresholds(s, y, g, criterion="nope")
