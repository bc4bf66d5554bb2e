# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Calibration by group: expected calibration error (ECE), Brier score, the calibration gap between groups and the
reliability-diagram data per group, with bootstrap intervals.

* **Confidence and outcome.** Binary tasks (``(N,)`` or ``(N, 2)`` scores): the positive-class probability ``p`` and
  the outcome ``y`` (the reliability curve of ``sklearn.calibration.calibration_curve``). Multi-class (``(N, C)``):
  the top-label confidence ``max_c p_c`` and whether the arg-max is correct (Guo et al., ICML 2017).
* **ECE** with ``n_bins`` equal-width bins on [0, 1] (bin ``b`` holds ``(b/n, (b+1)/n]``, the first also 0, as
  ``calibration_curve(strategy="uniform")``):

  .. math:: ECE_g = \\sum_b \\frac{n_{g,b}}{n_g} |\\bar y_{g,b} - \\bar p_{g,b}| = \\frac{1}{n_g} \\sum_b
            |\\textstyle\\sum_{i \\in (g,b)} (y_i - p_i)|

  (Naeini et al., AAAI 2015; Guo et al., 2017). ``ece_gap = max_g ECE_g - min_g ECE_g`` is the calibration gap
  (FairMedFM and MEDFAIR report group ECE differences).
* **Brier score** (Brier, Monthly Weather Review 1950): binary ``mean (p - y)^2``; multi-class
  ``mean sum_c (p_c - [y = c])^2`` (both as ``sklearn.metrics.brier_score_loss``); ``brier_gap`` its range.
* **Reliability diagram** per reported group and overall: per bin the mean confidence, the observed accuracy
  (fraction of positives / of correct predictions) and the count. A bin with fewer than ``min_group_size`` samples
  shows its count only.

Intervals: percentile bootstrap over the same resampling core as the other metrics (iid, stratified by group, or
``cluster``). Up to ``exact_max_elements`` replicate-by-sample entries the replicates are exact (per-sample weights);
above, the counts of the (group, bin, outcome) cells are drawn exactly (multinomial) and, given a cell's count
``n*``, the sums of its confidences and Brier terms are drawn from their exact first two moments
(``n* mean``, ``n* cov``; normal), which keeps 1,000 replicates of 10^6 samples at ``O(B x cells)``. The method is
named in ``ci_method``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_fair.metrics.core import (
    attach_intervals,
    bootstrap_intervals,
    build_result,
    collect_replicates,
    setup_groups,
)
from monai_fair.metrics.figures import figure_keys
from monai_fair.metrics.inputs import parse_labels, parse_model
from monai_fair.metrics.resampling import bootstrap_cell_counts, bootstrap_scheme, bootstrap_weights, describe_bootstrap
from monai_fair.metrics.utils import masked_range

__all__ = ["compute_group_calibration", "CALIBRATION_GROUP_METRICS", "CALIBRATION_FAIRNESS_METRICS"]

CALIBRATION_GROUP_METRICS = figure_keys("classification", "group", scores=True)
CALIBRATION_FAIRNESS_METRICS = figure_keys("classification", "fairness", scores=True, formula=False)
_NAN = float("nan")


def _per_sample(y_score: Any, y: Any, n_bins: int):
    """Confidence, outcome, Brier term and bin of every sample, and the NaN rows."""
    yt, nan_y = parse_labels(y)
    s_cols, y_hat, nan_s, c = parse_model(y_score, None, yt, 0.5, None)
    if c == 2:
        conf, out = s_cols[:, 0], (yt == 1).to(torch.float64)
        brier = (conf - out) ** 2
    else:
        conf, out = s_cols.max(1).values, (y_hat == yt).to(torch.float64)
        brier = ((s_cols - torch.nn.functional.one_hot(yt.clamp(0, c - 1), c)) ** 2).sum(1)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    b = torch.bucketize(conf, edges[1:-1], right=False)
    return conf, out, brier, b, nan_y | nan_s


def _figures(tot: torch.Tensor, n_bins: int, reported: torch.Tensor):
    """From totals ``(b, G, bins, 4)`` of (count, outcome, confidence, Brier): per group, overall, fairness."""
    n_g = tot[..., 0].sum(-1)
    err = (tot[..., 1] - tot[..., 2]).abs().sum(-1)
    div = lambda a, n: torch.where(n > 0, a / n.clamp_min(1e-300), torch.full_like(a, _NAN))  # noqa: E731
    pg = {"ece": div(err, n_g), "brier": div(tot[..., 3].sum(-1), n_g)}
    all_ = tot.sum(1)
    n = all_[..., 0].sum(-1)
    ov = {"ece": div((all_[..., 1] - all_[..., 2]).abs().sum(-1), n), "brier": div(all_[..., 3].sum(-1), n)}
    fair = {f"{m}_gap": masked_range(pg[m], reported) for m in CALIBRATION_GROUP_METRICS}
    return pg, ov, fair


def _approx_totals(counts: torch.Tensor, mean: torch.Tensor, chol: torch.Tensor, rng: np.random.Generator):
    """Replicate sums of the continuous columns given replicate cell counts ``(b, K)``: ``n* mean + sqrt(n*) L z``."""
    z = torch.from_numpy(rng.standard_normal((*counts.shape, mean.shape[1])))
    return counts[..., None] * mean + counts.sqrt()[..., None] * torch.einsum("kij,bkj->bki", chol, z)


def _replicates(x: torch.Tensor, cell: torch.Tensor, shape: tuple, setup, n_bootstrap, seed, strat, cluster, exact):
    """Chunks of ``(per_group, overall, fairness)`` replicates; ``x``: ``(N, 4)`` per-sample (1, y, p, Brier)."""
    g_, nb = shape
    if exact:
        strata = setup.group if strat else None
        for w in bootstrap_weights(x.shape[0], n_bootstrap, seed, 2**22, strata=strata, cluster=cluster):
            tot = torch.zeros(w.shape[0], g_ * nb * 2, 4, dtype=torch.float64)
            tot.index_add_(1, cell, w[..., None] * x[None])
            yield _figures(tot.view(-1, g_, nb, 2, 4).sum(3), nb, setup.reported)
        return
    k = g_ * nb * 2
    cnt = torch.bincount(cell, minlength=k).to(torch.float64).clamp_min(1)
    mean = torch.zeros(k, 2, dtype=torch.float64).index_add_(0, cell, x[:, 2:]) / cnt[:, None]
    dev = x[:, 2:] - mean[cell]
    cov = torch.zeros(k, 2, 2, dtype=torch.float64).index_add_(0, cell, dev[:, :, None] * dev[:, None, :])
    evals, evecs = torch.linalg.eigh(cov / cnt[:, None, None])
    chol = evecs * evals.clamp_min(0).sqrt()[:, None, :]
    outcome = torch.arange(k, dtype=torch.float64) % 2
    rng = np.random.default_rng([int(seed), 2])
    stratum = (torch.arange(k) // (nb * 2)).numpy() if strat else None
    for c in bootstrap_cell_counts(cell, k, n_bootstrap, seed, cell_stratum=stratum, cluster=cluster):
        tot = torch.cat([c[..., None], (c * outcome)[..., None], _approx_totals(c, mean, chol, rng)], -1)
        yield _figures(tot.view(-1, g_, nb, 2, 4).sum(3), nb, setup.reported)


def _reliability(x: torch.Tensor, cell: torch.Tensor, setup, n_bins: int) -> dict[str, Any]:
    """Per bin mean confidence, accuracy and count, per reported group and overall (small bins: count only)."""
    tot = torch.zeros(setup.num_groups * n_bins * 2, 4, dtype=torch.float64).index_add_(0, cell, x)
    tot = tot.view(setup.num_groups, n_bins, 2, 4).sum(2)
    k = max(int(setup.min_group_size), 1)

    def entry(t: torch.Tensor) -> dict[str, list]:
        n = t[:, 0]
        ok = n >= k
        val = lambda j: torch.where(ok, t[:, j] / n.clamp_min(1), torch.full_like(n, _NAN)).tolist()  # noqa: E731
        return {"confidence": val(2), "accuracy": val(1), "count": [int(v) for v in n.tolist()]}

    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64).tolist()
    shown = torch.nonzero(setup.reported & (setup.counts > 0)).flatten().tolist()
    return {"bin_edges": edges, "overall": entry(tot.sum(0)), "groups": {g: entry(tot[g]) for g in shown}}


def compute_group_calibration(
    y_score: Any,
    y: Any,
    group: Any,
    num_groups: int | None = None,
    *,
    n_bins: int = 10,
    group_names: Sequence[str] | None = None,
    min_group_size: int = 1,
    nan_policy: str = "propagate",
    n_bootstrap: int = 0,
    ci: float = 0.95,
    seed: int = 0,
    stratified_bootstrap: bool = False,
    cluster: Any = None,
    exact_max_elements: int = 2**26,
) -> dict[str, Any]:
    """ECE and Brier score per group and overall, ``ece_gap``/``brier_gap`` and reliability-diagram data.

    Definitions, binning and the interval method: module docstring. Suppression, the NaN policy and the result
    layout are those of :func:`~monai_fair.metrics.compute_group_classification_metrics`.

    Args:
        y_score: ``(N,)`` positive-class probabilities or ``(N, C)`` class probabilities.
        y: ``(N,)`` labels or one-hot; group: ``(N,)`` group ids; num_groups: ``K``.
        n_bins: number of equal-width bins.
        group_names, min_group_size, nan_policy: as in the other ``compute_group_*`` functions.
        n_bootstrap, ci, seed, stratified_bootstrap, cluster: percentile bootstrap intervals (0: none).
        exact_max_elements: largest ``n_bootstrap x N`` resampled exactly with per-sample weights.

    Returns:
        ``{"overall": {"n", "ece", "brier"}, "groups": {gid: {...}}, "fairness": {"ece_gap", "brier_gap"},
        "fairness_nan_reason", "suppression", "reliability": {"bin_edges", "overall": {"confidence", "accuracy",
        "count"}, "groups": {gid: {...}}}, "n_bins"}`` plus ``ci``, ``fairness_ci``, ``ci_method``, ``ci_level``
        with ``n_bootstrap > 0``.
    """
    conf, out, brier, b, nan_rows = _per_sample(y_score, y, int(n_bins))
    setup = setup_groups(
        group, conf.numel(), num_groups, nan_rows, nan_policy, min_group_size, group_names, "scores/labels"
    )
    keep = setup.keep if setup.keep is not None else slice(None)
    x = torch.stack([torch.ones_like(conf), out, conf, brier], 1)[keep]
    if setup.keep is None and bool(nan_rows.any()):
        x[nan_rows] = _NAN  # propagate: NaN sums make the group and overall NaN
    cell = (setup.group * n_bins + b[keep]) * 2 + out[keep].long()
    tot = torch.zeros(setup.num_groups * n_bins * 2, 4, dtype=torch.float64).index_add_(0, cell, x)
    pg, ov, fair = _figures(tot.view(1, setup.num_groups, n_bins, 2, 4).sum(3), n_bins, setup.reported)
    res = build_result(setup, x.shape[0], (pg, ov, fair), CALIBRATION_FAIRNESS_METRICS, index=(0,))
    res["reliability"], res["n_bins"] = _reliability(torch.nan_to_num(x), cell, setup, n_bins), int(n_bins)
    if n_bootstrap > 0 and x.shape[0] > 0:
        if cluster is not None:
            cluster = np.asarray(cluster).reshape(-1)[keep if setup.keep is None else setup.keep.numpy()]
        exact = n_bootstrap * x.shape[0] <= exact_max_elements
        args = (x, cell, (setup.num_groups, n_bins), setup, n_bootstrap, seed, stratified_bootstrap, cluster, exact)
        reps = collect_replicates(_replicates(*args))
        method = describe_bootstrap(bootstrap_scheme(stratified_bootstrap, cluster), n_bootstrap)
        if not exact:
            method += "; multinomial cell counts, within-cell sums from their first two moments"
        attach_intervals(res, bootstrap_intervals(reps, {m: v[0] for m, v in pg.items()}, setup, ci, method, False), ci)
    return res
