# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Decision thresholds fitted on validation scores: one global threshold, or one per group (post-processing).

A binary classifier's score ``s`` is turned into a decision ``s >= t``. The default ``t = 0.5`` assumes calibrated
scores; a model with a good AUC but badly calibrated scores can then predict one class for a whole group, which a
threshold *chosen on validation* avoids. Per-group thresholds are the post-processing route to equal opportunity of
Hardt, Price & Srebro, "Equality of opportunity in supervised learning", NeurIPS 2016 (deterministic thresholds;
their randomised mixing for exact equalised odds is not used), the mechanism of fairlearn's ``ThresholdOptimizer``.
The group must be known at deployment (it is an input of the decision rule): state this where it is used.

Criteria (``t`` always taken among the validation scores, decision ``s >= t``):

* ``"youden"``: maximise Youden's ``J = TPR - FPR`` (``fit_threshold``: on all cases; per group: on the group's).
* ``"equal_tpr"`` (per group): ``tau`` = the pooled validation TPR at the pooled Youden threshold; each group's
  threshold is the largest one whose validation TPR is ``>= tau`` (equal opportunity at the pooled operating point).

A group with no positive or no negative validation case keeps the pooled threshold (it cannot be fitted).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from monai.utils import look_up_option

from monai_fair.utils.validation import check_group_ids

__all__ = ["THRESHOLD_CRITERIA", "fit_threshold", "fit_group_thresholds", "apply_group_thresholds"]

THRESHOLD_CRITERIA = ("equal_tpr", "youden")


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.size != y.size or s.size == 0:
        raise ValueError(f"scores and labels need the same non-zero length, got {s.size} and {y.size}.")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {sorted(set(np.unique(y).tolist()))[:10]}.")
    return s, y.astype(np.int64)


def _youden_per_segment(s: np.ndarray, y: np.ndarray, seg: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per segment (group) the Youden-optimal threshold and whether the segment had both classes; vectorised."""
    order = np.lexsort((-s, seg))  # by segment, then score descending
    s, y, seg = s[order], y[order], seg[order]
    pos = np.bincount(seg, weights=y, minlength=k)
    neg = np.bincount(seg, minlength=k) - pos
    starts = np.concatenate(([0], np.cumsum(np.bincount(seg, minlength=k))[:-1]))
    tp = np.cumsum(y) - (np.cumsum(y) - y)[starts[seg]]  # cumulative positives within the segment
    fp = np.cumsum(1 - y) - (np.cumsum(1 - y) - (1 - y))[starts[seg]]
    # only the last case of a run of tied scores is a valid cut (decision s >= t keeps ties together)
    last = np.ones(s.size, dtype=bool)
    last[:-1] = (s[:-1] != s[1:]) | (seg[:-1] != seg[1:])
    j = np.where(last, tp / np.maximum(pos[seg], 1) - fp / np.maximum(neg[seg], 1), -np.inf)
    best = np.full(k, -np.inf)
    np.maximum.at(best, seg, j)
    hit = last & (j == best[seg])
    thr = np.full(k, np.nan)
    # the first (highest-threshold) maximiser of each segment: reverse assignment keeps the first occurrence
    idx = np.flatnonzero(hit)[::-1]
    thr[seg[idx]] = s[idx]
    return thr, (pos > 0) & (neg > 0)


def fit_threshold(scores: Any, labels: Any) -> float:
    """The Youden-optimal threshold (maximal ``TPR - FPR``) on validation scores of a binary task.

    Returns 0.5 when the labels hold a single class (nothing to fit).
    """
    s, y = _check(scores, labels)
    thr, ok = _youden_per_segment(s, y, np.zeros(s.size, dtype=np.int64), 1)
    return float(thr[0]) if ok[0] else 0.5


def fit_group_thresholds(
    scores: Any, labels: Any, groups: Any, num_groups: int | None = None, criterion: str = "equal_tpr"
) -> dict[str, Any]:
    """Fit one decision threshold per group on validation data (see the module docstring).

    Args:
        scores: ``(N,)`` positive-class scores.
        labels: ``(N,)`` 0/1 labels.
        groups: ``(N,)`` integer group ids.
        num_groups: ``G`` (default: largest id + 1).
        criterion: ``"equal_tpr"`` or ``"youden"``.

    Returns:
        ``{"thresholds": (G,) array, "pooled_threshold": float, "target_tpr": float | None, "fitted": (G,) bool,
        "criterion": str}``; groups that could not be fitted hold the pooled threshold.
    """
    criterion = look_up_option(criterion, THRESHOLD_CRITERIA)
    s, y = _check(scores, labels)
    g = check_group_ids(groups, num_groups, name="groups", num_samples=s.size).numpy()
    k = int(num_groups if num_groups is not None else g.max() + 1)
    pooled = fit_threshold(s, y)
    target = None
    if criterion == "youden":
        thr, ok = _youden_per_segment(s, y, g, k)
    else:
        pos = y == 1
        target = float(np.mean(s[pos] >= pooled)) if pos.any() else float("nan")
        sp, gp = s[pos], g[pos]
        order = np.lexsort((-sp, gp))
        sp, gp = sp[order], gp[order]
        n_pos = np.bincount(gp, minlength=k)
        n_neg = np.bincount(g[~pos], minlength=k)
        starts = np.concatenate(([0], np.cumsum(n_pos)[:-1]))
        # TPR >= tau needs the ceil(tau * n) highest positive scores: threshold = the ceil(tau * n)-th of them
        need = np.clip(np.ceil(target * n_pos - 1e-9).astype(np.int64), 1, np.maximum(n_pos, 1)) if pos.any() else 0
        ok = (n_pos > 0) & (n_neg > 0) & np.isfinite(target)
        thr = np.full(k, np.nan)
        thr[ok] = sp[(starts + need - 1)[ok]]
    thr = np.where(ok, thr, pooled)
    return {
        "thresholds": thr,
        "pooled_threshold": pooled,
        "target_tpr": target,
        "fitted": ok,
        "criterion": criterion,
    }


def apply_group_thresholds(scores: Any, groups: Any, thresholds: Any) -> np.ndarray:
    """Decisions ``score >= thresholds[group]`` as a ``(N,)`` int array."""
    t = np.asarray(thresholds, dtype=float).reshape(-1)
    s = np.asarray(scores, dtype=float).reshape(-1)
    g = check_group_ids(groups, t.size, name="groups", num_samples=s.size).numpy()
    if math.isnan(float(t.sum())):
        raise ValueError("thresholds must be finite numbers.")
    return (s >= t[g]).astype(np.int64)
