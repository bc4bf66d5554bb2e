# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group fairness metrics for segmentation from per-image Dice/IoU: per-group means, gaps, ES-Dice/ES-IoU, SER.

Functional :func:`compute_group_segmentation_metrics`, the per-image helper :func:`compute_per_image_dice_iou`
(MONAI's ``compute_dice``/``compute_iou``) and the cumulative :class:`GroupSegmentationMetric`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_fair.metrics.core import (
    GroupSetup,
    attach_intervals,
    bootstrap_intervals,
    build_result,
    collect_replicates,
    option,
    setup_groups,
)
from monai_fair.metrics.figures import figure_keys, formula_figures
from monai_fair.metrics.resampling import bootstrap_scheme, bootstrap_weights, describe_bootstrap
from monai_fair.metrics.utils import (
    FairnessMetricWarning,
    equity_scaled,
    masked_max,
    masked_min,
    masked_range,
    to_flat_tensor,
)

__all__ = [
    "compute_group_segmentation_metrics",
    "SEGMENTATION_GROUP_METRICS",
    "SEGMENTATION_FAIRNESS_METRICS",
    "ES_VARIANTS",
]

#: per-group metric names (the built-in figures of :mod:`monai_fair.metrics.figures`)
SEGMENTATION_GROUP_METRICS = figure_keys("segmentation", "group")
#: the three published "ES" forms (see :func:`compute_group_segmentation_metrics`)
ES_VARIANTS = ("fairseg", "fairseg_std", "fairmedfm")
#: fairness figure names computed here (registered figures with a formula follow them in every result)
SEGMENTATION_FAIRNESS_METRICS = figure_keys("segmentation", "fairness", formula=False)
_NAN = float("nan")


def _std(v: torch.Tensor, mask: torch.Tensor, ddof: int):
    x = torch.where(mask, v, torch.full_like(v, _NAN))
    d = ~torch.isnan(x)
    k = d.sum(-1)
    mu = torch.where(d, x, torch.zeros_like(x)).sum(-1) / k.clamp_min(1)
    ss = torch.where(d, (x - mu[..., None]) ** 2, torch.zeros_like(x)).sum(-1)
    out = torch.sqrt(ss / (k - ddof).clamp_min(1))
    return torch.where(k > ddof, out, torch.full_like(out, _NAN)), mu, k


def _seg_fairness(
    means: dict[str, torch.Tensor], overall: dict[str, torch.Tensor], mask: torch.Tensor, es_variant: str
) -> dict[str, torch.Tensor]:
    """Segmentation fairness figures over the groups in ``mask`` (>= 2 defined groups each, else NaN)."""
    out: dict[str, torch.Tensor] = {}
    for m in ("dice", "iou"):
        v, o = means[m], overall[m]
        n_def = (~torch.isnan(torch.where(mask, v, torch.full_like(v, _NAN)))).sum(-1)
        two, nan = n_def >= 2, torch.full_like(o, _NAN)
        out[f"{m}_gap"] = masked_range(v, mask)
        out[f"worst_group_{m}"] = torch.where(two, masked_min(v, mask), nan)
        out[f"es_{m}_fairseg"] = torch.where(two, equity_scaled(o, v, mask), nan)
        sd1, _, _ = _std(v, mask, 1)
        out[f"es_{m}_fairseg_std"] = torch.where(two, o / (1.0 + sd1), nan)
        sd0, mu, _ = _std(v, mask, 0)
        out[f"es_{m}_fairmedfm"] = torch.where(two, mu / (1.0 + sd0), nan)
        out[f"es_{m}"] = out[f"es_{m}_{es_variant}"]
        err_max = 1.0 - masked_min(v, mask)
        err_min = 1.0 - masked_max(v, mask)
        ok = (err_min > 0) & two
        out["ser" if m == "dice" else "ser_iou"] = torch.where(ok, err_max / err_min.clamp_min(1e-300), nan)
    out.update(formula_figures("segmentation", means, overall, mask))
    return out


class SegmentationEngine:
    """Per-group and overall mean Dice/IoU and the segmentation fairness figures of ``M`` models on the same images,
    on the data and on bootstrap replicates that resample the images once for all models (paired).

    Args:
        dice: ``(M, N)`` per-image Dice; iou: ``(M, N)`` per-image IoU (NaN rows when not given).
        setup: the groups after NaN policy and suppression.
        es_variant: which ES form is reported as ``es_dice``/``es_iou``.
    """

    def __init__(self, dice: torch.Tensor, iou: torch.Tensor, setup: GroupSetup, es_variant: str) -> None:
        values = torch.stack([dice, iou], 1)  # (M, 2, N)
        self.setup, self.es_variant = setup, es_variant
        self.g, self.ng, self.m = setup.group, setup.num_groups, values.shape[0]
        n = self.g.numel()
        x = torch.zeros(n, self.m, 2, self.ng, dtype=torch.float64)
        x[torch.arange(n), :, :, self.g] = values.permute(2, 0, 1)
        self._x = x.view(n, -1)  # (N, M * 2 * G): a replicate's group sums are one matrix product
        self._onehot = torch.nn.functional.one_hot(self.g, self.ng).to(torch.float64)

    def _stats(self, w: torch.Tensor | None):
        """``(per_group (b, M, G), overall (b, M), fairness (b, M))`` for weights ``(b, N)`` (None: the data)."""
        w = torch.ones(1, self.g.numel(), dtype=torch.float64) if w is None else w
        b = w.shape[0]
        n = w @ self._onehot
        s = (w @ self._x).view(b, self.m, 2, self.ng)
        mean = torch.where(n[:, None, None] > 0, s / n[:, None, None].clamp_min(1e-300), torch.full_like(s, _NAN))
        tot = n.sum(1)[:, None, None]
        ov = torch.where(tot > 0, s.sum(-1) / tot.clamp_min(1e-300), torch.full_like(s[..., 0], _NAN))
        pg = {"dice": mean[:, :, 0], "iou": mean[:, :, 1]}
        overall = {"dice": ov[:, :, 0], "iou": ov[:, :, 1]}
        return pg, overall, _seg_fairness(pg, overall, self.setup.reported, self.es_variant)

    def point(self):
        return self._stats(None)

    def replicates(self, n_bootstrap: int, seed: int, stratified: bool, cluster: Any):
        """Replicate chunks from per-image weights (:func:`bootstrap_weights`: iid, stratified by group, cluster)."""
        strata = self.g if stratified else None
        for w in bootstrap_weights(self.g.numel(), n_bootstrap, seed, strata=strata, cluster=cluster):
            yield self._stats(w)


def prepare_segmentation(
    dices: Sequence[Any],
    ious: Sequence[Any],
    group: Any,
    *,
    num_groups: int | None,
    nan_policy: str,
    min_group_size: int,
    group_names: Sequence[str] | None,
    es_variant: str,
    cluster: Any = None,
) -> tuple[SegmentationEngine, Any]:
    """Validate per-image scores of ``M`` models on the same images and build their :class:`SegmentationEngine`.

    Images where any model's score is NaN follow ``nan_policy`` for all models. Returns the engine and the
    cluster ids of the kept images."""
    es_variant = option(es_variant, ES_VARIANTS, "es_variant")
    d = torch.stack([to_flat_tensor(x, "dice", torch.float64).reshape(-1) for x in dices])
    n = d.shape[1]
    i = torch.stack(
        [to_flat_tensor(x, "iou", torch.float64).reshape(-1) if x is not None else torch.full((n,), _NAN) for x in ious]
    )
    if i.shape[1] != n:
        raise ValueError(f"dice ({n}) and iou ({i.shape[1]}) differ in length.")
    has_iou = torch.tensor([x is not None for x in ious])
    nan_rows = torch.isnan(d).any(0) | (torch.isnan(i) & has_iou[:, None]).any(0)
    setup = setup_groups(group, n, num_groups, nan_rows, nan_policy, min_group_size, group_names, "Dice/IoU")
    if setup.keep is not None:
        d, i = d[:, setup.keep], i[:, setup.keep]
        if cluster is not None:
            cluster = np.asarray(cluster).reshape(-1)[setup.keep.numpy()]
    return SegmentationEngine(d, i, setup, es_variant), cluster


def compute_group_segmentation_metrics(
    dice: Any,
    iou: Any,
    group: Any,
    num_groups: int | None = None,
    *,
    group_names: Sequence[str] | None = None,
    min_group_size: int = 1,
    es_variant: str = "fairseg",
    nan_policy: str = "propagate",
    n_bootstrap: int = 0,
    ci: float = 0.95,
    seed: int = 0,
    stratified_bootstrap: bool = False,
    cluster: Any = None,
) -> dict[str, Any]:
    """Per-group Dice/IoU and segmentation fairness metrics from per-image scores (figures: module docstring).

    ``M_g`` is the mean over the images of group ``g``, ``M_all`` the mean over all images. Group-level figures use
    the reported groups (suppression as in :func:`~monai_fair.metrics.compute_group_classification_metrics`) and
    need two of them with a defined mean (else NaN, reason in ``fairness_nan_reason``).

    Args:
        dice: ``(N,)`` per-image Dice (see :func:`compute_per_image_dice_iou`).
        iou: ``(N,)`` per-image IoU, or ``None``.
        group: ``(N,)`` integer group ids.
        num_groups: ``K``; default ``max(group) + 1``.
        group_names: names used in warnings (reported groups only).
        min_group_size: suppression threshold (:func:`~monai_fair.metrics.suppress_groups`); 1 suppresses nothing.
        es_variant: which ES form is reported as ``es_dice``/``es_iou``.
        nan_policy: ``"propagate"`` (a NaN score makes its group's mean and the overall mean NaN) or ``"omit"``
            (NaN images are dropped with a warning, as MONAI's ``mean`` reduction does).
        n_bootstrap, ci, seed: seeded percentile bootstrap intervals (0: none).
        stratified_bootstrap: resample within each group (keeps the group sizes) instead of jointly.
        cluster: ``(N,)`` patient ids: cluster bootstrap (patients resampled with all their images).

    Returns:
        As :func:`~monai_fair.metrics.compute_group_classification_metrics`: ``overall``, reported ``groups``,
        ``fairness``, ``fairness_nan_reason``, ``suppression``; with ``n_bootstrap > 0`` also ``ci`` entries,
        ``fairness_ci``, ``ci_method`` and ``ci_level``.
    """
    eng, cluster = prepare_segmentation(
        [dice],
        [iou],
        group,
        num_groups=num_groups,
        nan_policy=nan_policy,
        min_group_size=min_group_size,
        group_names=group_names,
        es_variant=es_variant,
        cluster=cluster,
    )
    pg, ov, fair = eng.point()
    res = build_result(eng.setup, eng.g.numel(), (pg, ov, fair), figure_keys("segmentation", "fairness"))
    best = [v for k, v in res["groups"].items() if v["n"] > 0]
    if res["fairness_nan_reason"].get("ser") and len(best) >= 2 and all(v["dice"] == v["dice"] for v in best):
        warnings.warn("SER is undefined (NaN): the best group has a perfect Dice.", FairnessMetricWarning, stacklevel=2)
    if n_bootstrap > 0 and eng.g.numel() > 0:
        reps = collect_replicates(eng.replicates(int(n_bootstrap), seed, stratified_bootstrap, cluster))
        reps = tuple({k: v[:, 0] for k, v in r.items()} for r in reps)
        method = describe_bootstrap(bootstrap_scheme(stratified_bootstrap, cluster), n_bootstrap)
        iv = bootstrap_intervals(reps, {m: v[0, 0] for m, v in pg.items()}, eng.setup, ci, method, False)
        attach_intervals(res, iv, ci)
    return res
