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
from monai.metrics import CumulativeIterationMetric, compute_dice, compute_iou
from monai.networks.utils import one_hot

from monai_fair.metrics.core import (
    GroupSetup,
    attach_intervals,
    bootstrap_intervals,
    build_result,
    check_reduction,
    collect_replicates,
    option,
    reduce_result,
    setup_groups,
)
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
    "compute_per_image_dice_iou",
    "GroupSegmentationMetric",
    "SEGMENTATION_GROUP_METRICS",
    "SEGMENTATION_FAIRNESS_METRICS",
    "ES_VARIANTS",
]

SEGMENTATION_GROUP_METRICS = ("dice", "iou")
#: the three published "ES" forms (see :func:`compute_group_segmentation_metrics`)
ES_VARIANTS = ("fairseg", "fairseg_std", "fairmedfm")
SEGMENTATION_FAIRNESS_METRICS = (
    "dice_gap",
    "iou_gap",
    "worst_group_dice",
    "worst_group_iou",
    "es_dice",
    "es_iou",
    "ser",
    "ser_iou",
    *(f"es_{m}_{v}" for m in ("dice", "iou") for v in ES_VARIANTS),
)
_NAN = float("nan")


def _on_device(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.as_tensor() if hasattr(x, "as_tensor") else x
    return to_flat_tensor(x, name)


def compute_per_image_dice_iou(
    y_pred: Any, y: Any, include_background: bool = False, ignore_empty: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Dice and IoU (mean over the foreground channels) with MONAI's ``compute_dice``/``compute_iou``.

    Args:
        y_pred: ``(B, C, spatial...)`` binarised one-hot prediction. Probabilities are binarised here
            (argmax for ``C > 1``, ``>= 0.5`` for ``C = 1``).
        y: ``(B, C, spatial...)`` one-hot ground truth, or ``(B, 1, spatial...)`` label map (one-hot encoded
            to ``C`` channels here).
        include_background: keep channel 0 (always kept when ``C = 1``).
        ignore_empty: MONAI's flag; with ``False`` (default) an empty ground truth scores 1 if the prediction is
            empty too, else 0, so no NaN arises.

    Returns:
        ``dice (B,)`` and ``iou (B,)`` as float64.
    """
    p = _on_device(y_pred, "y_pred").float()  # masks stay on their device; only the scores move to the CPU
    t = _on_device(y, "y").float().to(p.device)
    if p.ndim < 3:
        raise ValueError(f"y_pred must be (B, C, spatial...), got shape {tuple(p.shape)}.")
    c = p.shape[1]
    if not bool(((p == 0) | (p == 1)).all()):
        p = one_hot(p.argmax(1, keepdim=True), c, dim=1) if c > 1 else (p >= 0.5).float()
    if t.shape[1] == 1 and c > 1:
        t = one_hot(t.long(), c, dim=1)
    if t.shape != p.shape:
        raise ValueError(f"y_pred {tuple(p.shape)} and y {tuple(t.shape)} have different shapes.")
    inc = include_background or c == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = compute_dice(p, t, include_background=inc, ignore_empty=ignore_empty)
        i = compute_iou(p, t, include_background=inc, ignore_empty=ignore_empty)
    return torch.nanmean(d.double(), 1).cpu(), torch.nanmean(i.double(), 1).cpu()


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
    res = build_result(eng.setup, eng.g.numel(), (pg, ov, fair), SEGMENTATION_FAIRNESS_METRICS)
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


class GroupSegmentationMetric(CumulativeIterationMetric):
    """Cumulative group fairness metric for segmentation (see :func:`compute_group_segmentation_metrics`).

    Call as ``metric(y_pred, y, group=group)``: each iteration computes per-image Dice and IoU with
    :func:`compute_per_image_dice_iou` (``y_pred`` binarised one-hot, e.g. after ``AsDiscrete(argmax=True,
    to_onehot=C)``; probabilities are binarised) and buffers only ``(dice, iou, group)`` per image, never masks;
    ``get_buffer()`` gathers them across DDP ranks. Batch tensors and MONAI decollated lists are accepted.

    Args:
        num_groups: number of groups (default: inferred).
        include_background: passed to the per-image Dice/IoU.
        reduction: ``None``/``"none"`` for the full result dict, or one fairness key (``"worst_group_dice"``,
            ``"es_dice"``, ``"dice_gap"``, ``"ser"``, ...) or ``"overall_dice"``/``"overall_iou"`` for a scalar.
        kwargs: further arguments of :func:`compute_group_segmentation_metrics`.
    """

    def __init__(
        self,
        num_groups: int | None = None,
        include_background: bool = False,
        reduction: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.num_groups = num_groups
        self.include_background = include_background
        self.reduction = check_reduction(reduction, SEGMENTATION_GROUP_METRICS, SEGMENTATION_FAIRNESS_METRICS)
        self.kwargs = kwargs

    def __call__(self, y_pred: Any, y: Any = None, group: Any = None, cluster: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if y is None or group is None:
            raise ValueError("GroupSegmentationMetric needs y_pred, y and group=...")
        if isinstance(y_pred, (list, tuple)):
            y_pred = torch.stack([_on_device(v, "y_pred") for v in y_pred])
        if isinstance(y, (list, tuple)):
            y = torch.stack([_on_device(v, "y") for v in y])
        ret = self._compute_tensor(_on_device(y_pred, "y_pred"), _on_device(y, "y"), group=group, cluster=cluster)
        self.extend(*ret)
        return ret

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> Any:
        group, cluster = kwargs.get("group"), kwargs.get("cluster")
        if y is None or group is None:
            raise ValueError("GroupSegmentationMetric needs y_pred, y and group=...")
        if isinstance(group, (list, tuple)):
            group = torch.stack([to_flat_tensor(v, "group").reshape(-1) for v in group])
        g = to_flat_tensor(group, "group").reshape(-1).to(torch.float64)
        d, i = compute_per_image_dice_iou(y_pred, y, include_background=self.include_background)
        if g.numel() != d.numel():
            raise ValueError(f"batch sizes differ: y_pred {d.numel()}, group {g.numel()}.")
        dev = y_pred.device  # buffers on the input device, as NCCL gathers device tensors
        out = (d[:, None].to(dev), i[:, None].to(dev), g[:, None].to(dev))
        if cluster is None:
            return out
        if isinstance(cluster, (list, tuple)):
            cluster = torch.stack([to_flat_tensor(v, "cluster").reshape(-1) for v in cluster])
        cl = to_flat_tensor(cluster, "cluster").reshape(-1, 1).to(device=dev, dtype=torch.float64)
        if cl.shape[0] != g.numel():
            raise ValueError(f"batch sizes differ: cluster {cl.shape[0]}, group {g.numel()}.")
        return (*out, cl)

    def aggregate(self) -> Any:  # type: ignore[override]
        buf = self.get_buffer()
        if buf is None:
            raise ValueError("GroupSegmentationMetric has no data: call it on at least one batch first.")
        d, i, g = buf[:3]
        kwargs = dict(self.kwargs)
        if len(buf) == 4:
            kwargs["cluster"] = buf[3][:, 0]
        res = compute_group_segmentation_metrics(d[:, 0], i[:, 0], g[:, 0], self.num_groups, **kwargs)
        return reduce_result(res, self.reduction)
