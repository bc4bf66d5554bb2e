# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Verdicts on fairness figures and the smallest gap the data could detect.

**Verdict** of a difference-type figure (a gap, EOpp, EOdds, DP, the ECE gap) with estimate ``d``, interval
``[lo, hi]`` and a tolerance ``tol`` set by the user (:func:`disparity_verdict`):

* ``"disparity"``: the disparity is shown to be non-zero and ``|d| > tol``;
* ``"no disparity shown"``: the interval lies inside ``[-tol, tol]`` -- an *equivalence* claim, the logic of the two
  one-sided tests (Schuirmann, J. Pharmacokinet. Biopharm. 15, 1987): with a ``1 - 2a`` interval it is TOST at level
  ``a``; with the reported 95 % interval it is TOST at 2.5 % (conservative). A non-significant difference is
  *not* this verdict;
* ``"insufficient evidence"``: neither (the interval is too wide), or the figure is undefined. An equivalence
  claim never rests on a *degenerate* interval (``lo == hi``, e.g. ``[0, 0]`` when every group has TPR 1 on a
  handful of positives: the resamples cannot vary, which says nothing about the population) nor on data whose
  smallest detectable gap (below) exceeds the tolerance: both give "insufficient evidence".

"Non-zero" for a *signed* difference (a paired model difference, the signed SCP form) means the interval excludes
0. A *range over groups* (``max_g M_g - min_g M_g``) is positive on every resample even when all groups are equal,
so its interval always "excludes 0"; for these figures non-zero means that the test of equal group values rejects
at ``alpha`` (:func:`homogeneity_test`): the Wald chi-square test ``(L m)^T (L S L^T)^{-1} (L m) ~ chi2_{K-1}`` with
``L`` the ``K-1`` contrasts to the first reported group and ``S`` the covariance of the group values (bootstrap
covariance of the replicates; for AUC the DeLong covariance, which is DeLong's test of ``K`` AUCs).

**Detectable gap** (:func:`detectable_gaps`): the smallest true difference between the two smallest reported groups
that a two-sided test at level ``alpha`` detects with probability ``power``:
``(z_{1-alpha/2} + z_{power}) sqrt(V_a + V_b)``, with ``V = p (1 - p) / n`` for a rate (two-proportion z-test;
``p`` the pooled rate, ``n`` the group's denominator: all samples, positives for TPR, negatives for FPR), the
Hanley-McNeil variance for AUC (Radiology 143, 1982; ``A`` the pooled AUC, ``Q1 = A/(2-A)``,
``Q2 = 2A^2/(1+A)``), and ``s^2 / n`` with the pooled standard deviation for mean Dice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from monai_fair.metrics.figures import is_difference
from monai_fair.metrics.group_counts import segment_auc
from monai_fair.metrics.homogeneity import bootstrap_homogeneity, gap_tests, homogeneity_test, normal_quantile
from monai_fair.metrics.inputs import parse_labels, parse_model
from monai_fair.metrics.suppression import suppress_groups
from monai_fair.utils.validation import check_group_ids

__all__ = [
    "VERDICTS",
    "DIFFERENCE_FIGURES",
    "homogeneity_test",
    "bootstrap_homogeneity",
    "gap_tests",
    "disparity_verdict",
    "fairness_verdicts",
    "detectable_gaps",
]

VERDICTS = ("disparity", "no disparity shown", "insufficient evidence")
#: fairness figures that are differences (a verdict applies); others (worst group, ES, SER) are not
DIFFERENCE_FIGURES = ("eopp0", "eopp1", "eodds", "eodds_mean", "demographic_parity")
_NAN = float("nan")


def disparity_verdict(
    estimate: float,
    ci: Any,
    tol: float,
    p_value: float | None = None,
    alpha: float = 0.05,
    detectable_gap: float | None = None,
) -> str:
    """The verdict of one difference-type figure (module docstring).

    Args:
        estimate: the point estimate ``d``.
        ci: its interval ``[lo, hi]``.
        tol: the tolerance (same unit as ``d``, e.g. 0.05 for five AUC points).
        p_value: the test that the disparity is zero (for ranges over groups: :func:`homogeneity_test`); ``None``
            means ``d`` is a signed difference and "non-zero" is "the interval excludes 0".
        alpha: level of that test.
        detectable_gap: the smallest gap the data could detect (:func:`detectable_gaps`), if known; above ``tol``
            (or NaN) the data cannot support "no disparity shown".
    """
    lo, hi = (float(v) if v is not None else _NAN for v in ci) if ci is not None else (_NAN, _NAN)
    est = float(estimate) if estimate is not None else _NAN
    if any(math.isnan(v) for v in (est, lo, hi)):
        return "insufficient evidence"
    nonzero = (lo > 0 or hi < 0) if p_value is None else (p_value == p_value and p_value < alpha)
    if nonzero and abs(est) > tol:
        return "disparity"
    underpowered = detectable_gap is not None and not float(detectable_gap) <= tol
    if -tol <= lo and hi <= tol and hi > lo and not underpowered:
        return "no disparity shown"
    return "insufficient evidence"


def fairness_verdicts(
    result: dict[str, Any],
    tol: float | dict[str, float],
    alpha: float = 0.05,
    detectable: dict[str, float] | None = None,
) -> dict[str, dict]:
    """Verdict of every difference-type figure of a ``compute_group_*`` result computed with ``n_bootstrap > 0``.

    ``tol``: one tolerance or ``{figure: tol}``; ``detectable``: ``{figure: smallest detectable gap}`` (optional,
    see :func:`disparity_verdict`). Uses ``result["fairness_ci"]`` and, for ranges over groups,
    ``result["fairness_p_value"]`` (the homogeneity test). Returns ``{figure: {"verdict", "estimate", "ci", "tol",
    "p_value", "alpha"}}``."""
    out = {}
    for name, ci in result.get("fairness_ci", {}).items():
        if not is_difference(name):
            continue
        t = tol.get(name, _NAN) if isinstance(tol, dict) else float(tol)
        if t != t:
            continue
        p = result.get("fairness_p_value", {}).get(name)
        signed = result.get("fairness_form") == "signed" and name in ("eopp0", "eopp1", "eodds_mean")
        verdict = disparity_verdict(
            result["fairness"][name],
            ci,
            t,
            None if signed else (_NAN if p is None else p),
            alpha,
            (detectable or {}).get(name),
        )
        out[name] = {"verdict": verdict, "estimate": result["fairness"][name], "ci": ci, "tol": t, "p_value": p,
                     "alpha": float(alpha)}  # fmt: skip
    return out


def _hanley_mcneil(a: float, n_pos: float, n_neg: float) -> float:
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / max(n_pos * n_neg, 1)


def _figure(zz: float, variances: list[float], model: str, degenerate: str) -> dict[str, Any]:
    """``{"detectable_gap": zz sqrt(V_a + V_b), "variance_model"}``; NaN with a ``"reason"`` when a variance is
    undefined (an empty denominator) or zero (``degenerate`` says why), so the gap is never 0."""
    if any(v != v for v in variances):
        reason = "a compared group has no case in the denominator of this figure"
        return {"detectable_gap": _NAN, "variance_model": model, "reason": reason}
    if not all(v > 0 for v in variances):
        return {"detectable_gap": _NAN, "variance_model": model, "reason": degenerate}
    return {"detectable_gap": zz * math.sqrt(sum(variances)), "variance_model": model}


def _rate_figure(zz: float, hit: np.ndarray, den: np.ndarray, sel: list[np.ndarray]) -> dict[str, Any]:
    """Two-proportion z test of a rate ``hit`` over the cases in ``den``, pooled over all reported cases.

    A pooled rate of 0 or 1 has a zero binomial variance; the Jeffreys estimate ``(x + 1/2) / (n + 1)`` is used
    instead (a finite, positive detectable gap), and the variance model says so."""
    n_all, x = int(den.sum()), float(hit[den].sum())
    if n_all == 0:
        return _figure(zz, [_NAN, _NAN], "two-proportion z test, pooled rate", "")
    p, model = x / n_all, "two-proportion z test, pooled rate"
    if p in (0.0, 1.0):
        p, model = (x + 0.5) / (n_all + 1), f"{model} (observed rate {p:g}: Jeffreys estimate (x + 1/2) / (n + 1))"
    n_ab = [int(den[i].sum()) for i in sel]
    return _figure(zz, [p * (1 - p) / n if n > 0 else _NAN for n in n_ab], model, "")


def _classification_inputs(y: Any, y_score: Any, y_pred: Any, threshold: float, n: int):
    """Labels, predictions and (binary) positive-class scores as numpy arrays, and whether the task is binary.

    Parsed as in :func:`~monai_fair.metrics.compute_group_classification_metrics` (one-hot labels, ``(N,)`` or
    ``(N, C)`` scores, thresholded or arg-max predictions unless ``y_pred`` is given); rows with a NaN input are
    marked by a label of -1."""
    if y is None:
        raise ValueError("detectable_gaps needs `dice` (segmentation) or `y` with `y_score` or `y_pred`.")
    yt, nan_y = parse_labels(y)
    if yt.numel() != n:
        raise ValueError(f"`y` has {yt.numel()} labels but `group` has {n} entries.")
    s_cols, y_hat, nan_s, c = parse_model(y_score, y_pred, yt, threshold, None)
    bad = (nan_y | nan_s).numpy()
    yv, yh = yt.numpy().copy(), y_hat.numpy()
    yv[bad] = -1
    s = s_cols[:, 0].numpy() if (s_cols is not None and c == 2) else None
    return yv, yh, s, c == 2


def detectable_gaps(
    group: Any,
    *,
    y: Any = None,
    y_score: Any = None,
    y_pred: Any = None,
    dice: Any = None,
    threshold: float = 0.5,
    min_group_size: int = 1,
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict[str, Any]:
    """The smallest difference between the two smallest reported groups detectable at ``alpha`` with ``power``.

    Binary classification (``y`` and ``y_score`` or ``y_pred``): accuracy, TPR, FPR, selection rate
    (two-proportion z) and AUC (Hanley-McNeil; needs ``y_score``); multi-class (``(N, C)`` scores or predicted
    labels): accuracy only. Segmentation (``dice``): mean Dice (z with the pooled SD). Suppressed groups are not
    used (:func:`~monai_fair.metrics.suppress_groups`); cases with a NaN input are left out.

    A detectable gap is never 0: a pooled rate of 0 or 1 uses the Jeffreys estimate of the rate (see
    :func:`_rate_figure`); a zero variance that has no such fix (a pooled AUC of 0 or 1, Dice without spread) or
    an empty denominator (no positives in a compared group) gives NaN with a ``"reason"``.

    Returns:
        ``{"alpha", "power", "groups_compared": 2, "figures": {metric: {"detectable_gap", "variance_model"[,
        "reason"]}}}`` (no figure when fewer than two groups are reported).
    """
    g = check_group_ids(group)
    counts = torch.bincount(g)
    rep = torch.nonzero(suppress_groups(counts, min_group_size) & (counts > 0)).flatten()
    out: dict[str, Any] = {"alpha": float(alpha), "power": float(power), "groups_compared": 2, "figures": {}}
    if rep.numel() < 2:
        return out
    a, b = rep[torch.argsort(counts[rep], stable=True)[:2]].tolist()
    zz = normal_quantile(1 - alpha / 2) + normal_quantile(power)
    if dice is not None:
        d = np.asarray(dice, dtype=np.float64).reshape(-1)
        sel = [np.flatnonzero((g.numpy() == k) & ~np.isnan(d)) for k in (a, b)]
        var = float(np.nanvar(d, ddof=1)) if (~np.isnan(d)).sum() > 1 else _NAN
        var = 0.0 if var <= 1e-12 * max(1.0, float(np.nanmean(d)) ** 2) else var  # rounding error of a constant
        v = [var / i.size if i.size else _NAN for i in sel]
        out["figures"]["dice"] = _figure(zz, v, "z test of two means, pooled SD", "the per-image Dice has no spread")
        return out
    yt, yh, s, binary = _classification_inputs(y, y_score, y_pred, threshold, g.numel())
    ok = yt >= 0
    sel = [np.flatnonzero((g.numpy() == k) & ok) for k in (a, b)]
    rates = {"accuracy": (yh == yt, ok)}
    if binary:  # the positive-class rates
        rates.update(tpr=(yh == 1, yt == 1), fpr=(yh == 1, yt == 0), selection_rate=(yh == 1, ok))
    for name, (hit, den) in rates.items():
        out["figures"][name] = _rate_figure(zz, hit, den, sel)
    if s is not None:
        pos = torch.from_numpy(yt[ok] == 1)[:, None]
        auc = float(
            segment_auc(torch.from_numpy(s[ok])[:, None], pos, torch.zeros(int(ok.sum()), dtype=torch.long), 1)[0, 0, 0]
        )
        v = [_hanley_mcneil(auc, (yt[i] == 1).sum(), (yt[i] == 0).sum()) if auc == auc else _NAN for i in sel]
        v = [_NAN if min((yt[i] == 1).sum(), (yt[i] == 0).sum()) == 0 else x for i, x in zip(sel, v)]
        why = "the pooled AUC is 0 or 1: the Hanley-McNeil variance is 0"
        out["figures"]["auc"] = _figure(zz, v, "Hanley-McNeil, pooled AUC", why)
    return out
