# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Paired model comparison on the same cases: differences of every per-group, overall, gap, worst-group and ES
figure with paired intervals, p-values, Holm correction and a direction-aware verdict.

"A is better than B" needs a *paired* comparison: both models are scored on the same cases, and the uncertainty of
the difference comes from resampling those cases once for both (the case-level correlation between the models
cancels). This is the statistics engine of ``python -m monai_fair compare`` and of the fairness trial.

**Estimator with several seeds per model** ("seeds combined"): with base seeds ``A_1..A_S`` and other seeds
``B_1..B_T`` scored on the same cases, the difference of a figure ``F`` is

.. math:: D = \\frac{1}{T}\\sum_t F(B_t) - \\frac{1}{S}\\sum_s F(A_s),

the difference of the seed-averaged figures (for a single seed each, the plain paired difference). Its interval
resamples the *cases* (iid, stratified by group, or patients with ``cluster``) once per replicate for all
``S + T`` models and recomputes ``D``: it measures the uncertainty from the finite test set for these trained
models. The spread over training seeds is reported beside it (per-seed values and their standard deviation,
and the per-seed paired differences ``F(B_s) - F(A_s)`` when ``S = T``). With several seeds on a side this
case-only interval becomes the secondary one (``figure["conditional"]``) and the interval, p-value and verdict are
the seed-aware ones of :mod:`monai_fair.metrics.seeds` (``seed_pairing``).

Intervals and tests:

* AUC, overall and per group (``auc_ci="delong"``): paired DeLong (DeLong et al., Biometrics 1988): the contrast
  ``c`` of the seed averages has variance ``c^T Sigma c`` with ``Sigma`` the joint DeLong covariance of all models'
  group and overall AUCs (:class:`~monai_fair.metrics.delong.DeLongAUC`; cluster-robust with ``cluster``);
  normal interval and two-sided z-test.
* AUC-derived figures (``auc_gap``, ``worst_group_auc``, ``es_auc``): percentile interval of ``D`` over parametric
  draws from that joint covariance.
* every other figure: paired percentile bootstrap of ``D`` (same resampled cases for all models); p-value of the
  two-sided Wald test ``z = D / sd*(D)`` with the bootstrap standard error (its resolution is not limited to
  ``1/B``, which matters after Holm).

Holm's correction (:func:`~monai_fair.metrics.multiplicity.holm_adjust`) runs across every figure with a p-value.
Verdict per figure: ``"better"``/``"worse"`` when the Holm-adjusted p-value is below ``alpha``, judged by the
figure's direction (higher is better for performance, worst-group and ES figures; lower is better for gaps,
FPR, EOpp/EOdds/DP and SER), else ``"no evidence"``; figures without a direction (``selection_rate``) get
``"higher"``/``"lower"``. A per-group AUC that is undefined (the group has one class, or too few positives or
negatives for a DeLong variance) gets ``"undefined"`` with the reason in ``"undefined"``; it takes no part in the
other groups' and the overall AUC tests, which are computed over the groups where AUC is defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_fair.metrics.core import collect_replicates, option
from monai_fair.metrics.delong import normal_interval
from monai_fair.metrics.figures import figure_keys, get_figure
from monai_fair.metrics.group_classification import (
    AUC_CI_METHODS,
    CLASSIFICATION_GROUP_METRICS,
    prepare_classification,
)
from monai_fair.metrics.group_segmentation import (
    SEGMENTATION_FAIRNESS_METRICS,
    SEGMENTATION_GROUP_METRICS,
    prepare_segmentation,
)
from monai_fair.metrics.multiplicity import holm_adjust
from monai_fair.metrics.resampling import bootstrap_scheme, describe_bootstrap
from monai_fair.metrics.seeds import apply_seed_aware
from monai_fair.metrics.utils import percentile_ci
from monai_fair.utils.serialization import to_json_safe

__all__ = ["compare_models", "figure_direction", "COMPARISON_TASKS"]

COMPARISON_TASKS = ("classification", "segmentation")
_AUC_DERIVED = ("auc_gap", "worst_group_auc", "es_auc")


def figure_direction(name: str) -> str:
    """``"lower"`` (lower is better: gaps, FPR, EOpp/EOdds/DP, SER, ECE, Brier), ``"none"`` (selection rate) or
    ``"higher"`` (performance, worst-group and ES figures)."""
    f = get_figure(name)
    if f is not None:  # the registry (monai_fair.metrics.figures)
        return f.direction
    return "lower" if name.endswith("_gap") else "higher"


def _seeds(x: Any, name: str) -> list[Any]:
    """A list of per-seed arrays: a list/tuple of array-likes is several seeds, anything else one."""
    if isinstance(x, (list, tuple)) and len(x) and all(np.ndim(v) >= 1 for v in x):
        return list(x)
    if x is None:
        raise ValueError(f"`{name}` is required.")
    return [x]


def _table(pg: dict, ov: dict, fair: dict, groups: list[int], metrics: Sequence[str], fairness: Sequence[str]):
    """Figure descriptors and values ``(B, M, F)``: overall metrics, per-group metrics, fairness figures."""
    meta, cols = [], []
    metrics = [m for m in metrics if m in ov]  # selection_rate: binary only
    for m in metrics:
        meta.append({"figure": m, "scope": "overall", "group": None})
        cols.append(ov[m])
    for g in groups:
        for m in metrics:
            meta.append({"figure": m, "scope": "group", "group": g})
            cols.append(pg[m][..., g])
    for f in fairness:
        meta.append({"figure": f, "scope": "fairness", "group": None})
        cols.append(fair[f])
    return meta, torch.stack(cols, -1)


def _engine(task: str, y, group, base: list, other: list, kw: dict, base_iou: Any, other_iou: Any):
    """The paired engine of all ``S + T`` models, its cluster ids and the metric/fairness names."""
    common = {k: kw[k] for k in ("num_groups", "nan_policy", "min_group_size", "group_names", "cluster")}
    if task == "classification":
        eng, cl = prepare_classification(
            base + other, [None] * (len(base) + len(other)), y, group, threshold=kw["threshold"],
            num_classes=None, fairness_form="range", **common,
        )  # fmt: skip
        return eng, cl, CLASSIFICATION_GROUP_METRICS, figure_keys("classification", "fairness")
    ious = _seeds(base_iou, "base_iou") + _seeds(other_iou, "other_iou") if base_iou is not None else None
    eng, cl = prepare_segmentation(
        base + other, ious or [None] * (len(base) + len(other)), group, es_variant="fairseg", **common
    )
    fair = tuple(f for f in SEGMENTATION_FAIRNESS_METRICS if f.count("_") < 2 or f.startswith("worst"))  # no variants
    fair += figure_keys("segmentation", "fairness", formula=True)
    if ious is None:  # Dice only
        return eng, cl, ("dice",), tuple(f for f in fair if "iou" not in f)
    return eng, cl, SEGMENTATION_GROUP_METRICS, fair


def _paired_delong(eng, meta: list[dict], n_base: int, cluster: Any, ci: float):
    """Paired DeLong difference, interval and p-value of every overall/group AUC figure (index -> tuple), and the
    reason of every AUC figure without a test (index -> text).

    A group whose AUC or DeLong variance is undefined (one class, or fewer than two positives or negatives) leaves
    the other groups' and the overall tests intact: each contrast uses only its own columns of the covariance."""
    idx = [i for i, f in enumerate(meta) if f["figure"] == "auc" and f["scope"] in ("overall", "group")]
    if not idx or eng.delong is None:
        return {}, {}
    m, k = eng.m, eng.ng + 1
    contrast = torch.zeros(len(idx), m, k, dtype=torch.float64)
    weights = torch.tensor([-1.0 / n_base] * n_base + [1.0 / (m - n_base)] * (m - n_base), dtype=torch.float64)
    cols = torch.tensor([eng.ng if meta[i]["scope"] == "overall" else meta[i]["group"] for i in idx])
    contrast[torch.arange(len(idx)), :, cols] = weights
    c = contrast.view(len(idx), -1)
    cov = eng.delong.covariance(cluster)
    theta = eng.delong.theta.reshape(-1)
    no_auc, no_var = torch.isnan(theta), torch.isnan(torch.diagonal(cov)) & ~torch.isnan(theta)
    used = c != 0
    undefined_auc, undefined_var = (used & no_auc[None]).any(1), (used & no_var[None]).any(1)
    est = c @ theta.nan_to_num(0.0)
    se = torch.sqrt(torch.einsum("rk,kl,rl->r", c, cov.nan_to_num(0.0), c).clamp_min(0))
    lo, hi, p = normal_interval(est, se, ci, (-1.0, 1.0))  # a difference of AUCs lies in [-1, 1]
    bad = undefined_auc | undefined_var
    est, lo, hi, p = (torch.where(bad, torch.full_like(t, float("nan")), t) for t in (est, lo, hi, p))
    reasons = {}
    for r, i in enumerate(idx):
        if bool(undefined_auc[r]):
            reasons[i] = "AUC undefined: the cases of this group have only one class"
        elif bool(undefined_var[r]):
            reasons[i] = "DeLong variance undefined: fewer than two positives or two negatives"
    return {i: (float(est[r]), float(lo[r]), float(hi[r]), float(p[r])) for r, i in enumerate(idx)}, reasons


def _bootstrap_stats(point_d: torch.Tensor, reps_d: torch.Tensor, ci: float):
    """Percentile interval and Wald p-value (bootstrap SE) of every difference ``(F,)`` from replicates ``(B, F)``."""
    lo, hi = percentile_ci(reps_d, ci)
    ok = ~torch.isnan(reps_d)
    cnt = ok.sum(0).clamp_min(2)
    mean = torch.where(ok, reps_d, torch.zeros_like(reps_d)).sum(0) / cnt
    var = torch.where(ok, (reps_d - mean) ** 2, torch.zeros_like(reps_d)).sum(0) / (cnt - 1)
    _, _, p = normal_interval(point_d, torch.sqrt(var), ci)
    p = torch.where(var > 0, p, torch.full_like(p, float("nan")))
    return lo, hi, p


def _verdict(direction: str, diff: float, p_holm: float, alpha: float) -> str:
    if not p_holm < alpha:  # also NaN
        return "no evidence"
    if direction == "none":
        return "higher" if diff > 0 else "lower"
    return "better" if (diff > 0) == (direction == "higher") else "worse"


def _seed_summary(vals: torch.Tensor, n_base: int) -> dict[str, Any]:
    """Per-seed values, their spread and (equal seed counts) the per-seed paired differences."""
    b, o = vals[:n_base], vals[n_base:]
    sd = lambda v: float(v.std()) if v.numel() > 1 else float("nan")  # noqa: E731
    out = {"base_per_seed": b.tolist(), "other_per_seed": o.tolist(), "base_seed_sd": sd(b), "other_seed_sd": sd(o)}
    if b.numel() == o.numel() and b.numel() > 1:
        out["paired_seed_differences"] = (o - b).tolist()
        out["paired_seed_sd"] = sd(o - b)
    return out


def _figures(meta, point, reps, nb, ci, delong, use_delong, scheme, n_bootstrap, cluster, group_names) -> list[dict]:
    """One entry per figure: seed-averaged values, the paired difference, its interval and p-value, seed spread."""
    diff = lambda t: t[:, nb:].mean(1) - t[:, :nb].mean(1)  # noqa: E731
    d0, dr = diff(point[None])[0], diff(reps)
    lo, hi, p = _bootstrap_stats(d0, dr, ci)
    boot = "paired " + describe_bootstrap(scheme, n_bootstrap)
    dl_name = "paired DeLong" + (", cluster-robust" if cluster is not None else "")
    out = []
    for i, f in enumerate(meta):
        est, flo, fhi, fp = (float(d0[i]), float(lo[i]), float(hi[i]), float(p[i]))
        cim, pm = boot, "Wald z with bootstrap SE"
        if i in delong:
            (est, flo, fhi, fp), cim, pm = delong[i], dl_name, "DeLong z"
        elif use_delong and f["figure"] in _AUC_DERIVED:
            cim = f"paired percentile of B={n_bootstrap} parametric draws from the joint DeLong covariance"
        name = None
        if f["group"] is not None and group_names is not None and f["group"] < len(group_names):
            name = str(group_names[f["group"]])
        vals = point[:, i]
        out.append({
            **f, "group_name": name, "direction": figure_direction(f["figure"]),
            "base": float(vals[:nb].mean()), "other": float(vals[nb:].mean()), "difference": est,
            "ci": [flo, fhi], "p_value": fp, "ci_method": cim, "p_method": pm, **_seed_summary(vals, nb),
        })  # fmt: skip
    return out


def compare_models(
    y: Any,
    group: Any,
    base_scores: Any,
    other_scores: Any,
    *,
    task: str = "classification",
    cluster: Any = None,
    num_groups: int | None = None,
    group_names: Sequence[str] | None = None,
    threshold: float = 0.5,
    base_iou: Any = None,
    other_iou: Any = None,
    min_group_size: int = 10,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    stratified_bootstrap: bool = False,
    auc_ci: str = "delong",
    nan_policy: str = "propagate",
    seed_pairing: str = "independent",
) -> dict[str, Any]:
    """Paired comparison ``other - base`` of every figure on the same cases (method: module docstring).

    Args:
        y: ``(N,)`` labels (classification; ignored for segmentation, may be ``None``).
        group: ``(N,)`` group ids ``0..K-1``.
        base_scores, other_scores: one model's scores, or a list of per-seed scores on the same cases.
            Classification: ``(N,)`` positive-class or ``(N, C)`` class probabilities. Segmentation: ``(N,)``
            per-image Dice (``base_iou``/``other_iou``: per-image IoU, same seed layout, optional).
        task: ``"classification"`` or ``"segmentation"``.
        cluster: ``(N,)`` patient ids: paired cluster bootstrap and cluster-robust paired DeLong.
        num_groups, group_names, threshold, nan_policy: as in the ``compute_group_*`` functions.
        min_group_size: suppression threshold (default 10); suppressed groups appear nowhere in the result.
        n_bootstrap, ci, seed, stratified_bootstrap: the paired bootstrap (``n_bootstrap >= 2``).
        alpha: family-wise error rate of the Holm-corrected verdicts.
        auc_ci: ``"delong"`` (paired DeLong) or ``"bootstrap"`` (AUC recomputed on every resample).
        seed_pairing: with several seeds on a side, the interval, p-value and verdict are the seed-aware ones
            (:mod:`monai_fair.metrics.seeds`; the case-only interval moves to each figure's ``"conditional"``):
            ``"independent"`` seeds, or ``"paired"`` when seed ``i`` of both sides shares its initialisation and
            data order.

    Returns:
        A strict-JSON-safe dict (NaN -> ``None``): ``{"task", "n_cases", "n_seeds": {"base", "other"}, "ci_level",
        "alpha", "n_bootstrap", "seed", "bootstrap" (scheme), "auc_ci", "estimator" (text),
        "multiple_testing": {"method": "holm", "family_size"}, "suppression": {"min_group_size",
        "reported_groups", "suppressed_groups"}, "figures": [...]}``. Each figure: ``{"figure"`` (e.g. ``"auc"``,
        ``"auc_gap"``), ``"scope"`` (``"overall"``, ``"group"``, ``"fairness"``), ``"group"`` (id or None),
        ``"group_name"``, ``"direction"`` (``"higher"``/``"lower"``/``"none"``: which is better), ``"base"``,
        ``"other"`` (seed-averaged), ``"difference"`` (other - base), ``"ci"`` ``[lo, hi]``, ``"p_value"``,
        ``"p_holm"``, ``"verdict"`` (``"better"``/``"worse"``/``"no evidence"``/``"undefined"``, then with the
        reason in ``"undefined"``), ``"ci_method"``, ``"p_method"``,
        ``"base_per_seed"``, ``"other_per_seed"``, ``"base_seed_sd"``, ``"other_seed_sd"`` and, with equal seed
        counts > 1, ``"paired_seed_differences"``, ``"paired_seed_sd"``}``.
    """
    task = option(task, COMPARISON_TASKS, "task")
    auc_ci = option(auc_ci, AUC_CI_METHODS, "auc_ci")
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be >= 2 for paired intervals, got {n_bootstrap}.")
    base, other = _seeds(base_scores, "base_scores"), _seeds(other_scores, "other_scores")
    kw = dict(num_groups=num_groups, nan_policy=nan_policy, min_group_size=min_group_size, group_names=group_names,
              cluster=cluster, threshold=threshold)  # fmt: skip
    eng, cl, metrics, fairness = _engine(task, y, group, base, other, kw, base_iou, other_iou)
    setup = eng.setup
    groups = torch.nonzero(setup.reported & (setup.counts > 0)).flatten().tolist()
    meta, point = _table(*eng.point(), groups, metrics, fairness)
    reps_args = (n_bootstrap, seed, stratified_bootstrap, cl) + ((auc_ci,) if task == "classification" else ())
    _, reps = _table(*collect_replicates(eng.replicates(*reps_args)), groups, metrics, fairness)
    nb = len(base)
    use_delong = task == "classification" and auc_ci == "delong"
    delong, undefined = _paired_delong(eng, meta, nb, cl, ci) if use_delong else ({}, {})
    scheme = bootstrap_scheme(stratified_bootstrap, cl)
    figures = _figures(meta, point[0], reps, nb, ci, delong, use_delong, scheme, n_bootstrap, cl, group_names)
    seed_aware = apply_seed_aware(figures, point[0], reps, nb, seed_pairing, ci) if len(base + other) > 2 else None
    adj = holm_adjust([f["p_value"] for f in figures])
    for f, pa in zip(figures, adj):
        f["p_holm"] = float(pa)
        f["verdict"] = _verdict(f["direction"], f["difference"], float(pa), alpha)
    for i, why in undefined.items():
        figures[i]["verdict"], figures[i]["undefined"] = "undefined", why
    return to_json_safe({
        "task": task, "n_cases": int(setup.counts.sum()), "n_seeds": {"base": nb, "other": len(other)},
        "ci_level": float(ci), "alpha": float(alpha), "n_bootstrap": int(n_bootstrap), "seed": int(seed),
        "bootstrap": scheme, "auc_ci": auc_ci if task == "classification" else None,
        "estimator": "mean over other seeds minus mean over base seeds of each figure; paired case resampling",
        "multiple_testing": {"method": "holm", "family_size": int(np.isfinite(adj).sum())},
        "suppression": setup.suppression(), "figures": figures, "seed_aware": seed_aware,
    })  # fmt: skip
