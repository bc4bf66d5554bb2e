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

import torch
from monai.metrics import CumulativeIterationMetric, compute_dice, compute_iou
from monai.networks.utils import one_hot

from monai_fair.metrics.utils import (
    FairnessMetricWarning,
    bootstrap_weights,
    equity_scaled,
    group_label,
    masked_max,
    masked_min,
    masked_range,
    percentile_ci,
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


def _group_means(values: torch.Tensor, group: torch.Tensor, num_groups: int, weights: torch.Tensor | None):
    """Per-group and overall weighted means ``(B, G)``, ``(B,)`` and per-group weighted counts."""
    if weights is None:
        n = torch.bincount(group, minlength=num_groups).to(torch.float64)[None]
        s = torch.bincount(group, weights=values, minlength=num_groups).to(torch.float64)[None]
    else:
        b = weights.shape[0]
        n = torch.zeros(b, num_groups, dtype=torch.float64).index_add_(1, group, weights)
        s = torch.zeros(b, num_groups, dtype=torch.float64).index_add_(1, group, weights * values)
    mean = torch.where(n > 0, s / n.clamp_min(1e-300), torch.full_like(s, _NAN))
    tot = n.sum(1)
    overall = torch.where(tot > 0, s.sum(1) / tot.clamp_min(1e-300), torch.full_like(tot, _NAN))
    return mean, overall, n


def _std(v: torch.Tensor, mask: torch.Tensor, ddof: int) -> torch.Tensor:
    x = torch.where(mask, v, torch.full_like(v, _NAN))
    d = ~torch.isnan(x)
    k = d.sum(-1)
    mu = torch.where(d, x, torch.zeros_like(x)).sum(-1) / k.clamp_min(1)
    ss = torch.where(d, (x - mu[..., None]) ** 2, torch.zeros_like(x)).sum(-1)
    out = torch.sqrt(ss / (k - ddof).clamp_min(1))
    return torch.where(k > ddof, out, torch.full_like(out, _NAN)), mu, k


def _seg_fairness(
    means: dict[str, torch.Tensor], overall: dict[str, torch.Tensor], mask: torch.Tensor, es_variant: str
):
    out: dict[str, torch.Tensor] = {}
    for m in ("dice", "iou"):
        v, o = means[m], overall[m]
        out[f"{m}_gap"] = masked_range(v, mask)
        out[f"worst_group_{m}"] = masked_min(v, mask)
        out[f"es_{m}_fairseg"] = equity_scaled(o, v, mask)
        sd1, _, _ = _std(v, mask, 1)
        out[f"es_{m}_fairseg_std"] = o / (1.0 + sd1)
        sd0, mu, k = _std(v, mask, 0)
        out[f"es_{m}_fairmedfm"] = torch.where(k > 0, mu / (1.0 + sd0), torch.full_like(mu, _NAN))
        out[f"es_{m}"] = out[f"es_{m}_{es_variant}"]
        err_max = 1.0 - masked_min(v, mask)
        err_min = 1.0 - masked_max(v, mask)
        n_def = (~torch.isnan(torch.where(mask, v, torch.full_like(v, _NAN)))).sum(-1)
        ok = (err_min > 0) & (n_def >= 2)
        out["ser" if m == "dice" else "ser_iou"] = torch.where(
            ok, err_max / err_min.clamp_min(1e-300), torch.full_like(err_max, _NAN)
        )
    return out


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
) -> dict[str, Any]:
    """Per-group Dice/IoU and segmentation fairness metrics from per-image scores.

    ``M_g`` is the mean over the images of group ``g``, ``M_all`` the mean over all images. Over the groups with
    ``n >= min_group_size`` (and a defined mean):

    * ``dice_gap``/``iou_gap = max_g M_g - min_g M_g``; ``worst_group_dice``/``worst_group_iou = min_g M_g``.
    * ES variants (all returned as ``es_{dice,iou}_{variant}``; ``es_variant`` picks which one is ``es_dice``):

      - ``"fairseg"`` (default; Harvard-FairSeg ``equity_scaled_perf``, Tian et al. ICLR 2024):
        :math:`M_{all} / (1 + \\sum_g |M_{all} - M_g|)`;
      - ``"fairseg_std"`` (FairSeg ``equity_scaled_std_perf``): :math:`M_{all} / (1 + sd_{ddof=1}(M_g))`;
      - ``"fairmedfm"`` (FairMedFM ``evaluate_seg``): :math:`mean_g(M_g) / (1 + sd_{ddof=0}(M_g))`.
    * ``ser`` (skewed error ratio, on Dice; ``ser_iou`` on IoU): :math:`\\max_g(1 - M_g) / \\min_g(1 - M_g)`,
      NaN when the best group is perfect (``min_g(1 - M_g) = 0``) or fewer than two groups are defined.

    Undefined values (empty group, NaN scores) are NaN with a
    :class:`~monai_fair.metrics.utils.FairnessMetricWarning` naming the group.

    Args:
        dice: ``(N,)`` per-image Dice (see :func:`compute_per_image_dice_iou`).
        iou: ``(N,)`` per-image IoU, or ``None``.
        group: ``(N,)`` integer group ids.
        num_groups: ``K``; default ``max(group) + 1``.
        group_names: names used in warnings.
        min_group_size: groups with fewer images are left out of every fairness aggregate.
        es_variant: which ES form is reported as ``es_dice``/``es_iou``.
        nan_policy: ``"propagate"`` (a NaN score makes its group's mean and the overall mean NaN) or ``"omit"``
            (NaN images are dropped with a warning, as MONAI's ``mean`` reduction does).
        n_bootstrap, ci, seed: seeded percentile bootstrap intervals (0: none).
        stratified_bootstrap: resample within each group (keeps the group sizes) instead of jointly.

    Returns:
        ``{"overall": {...}, "groups": {gid: {...}}, "fairness": {...}}`` (plus ``ci``/``fairness_ci`` when
        bootstrapping), Python floats.
    """
    if es_variant not in ES_VARIANTS:
        raise ValueError(f"es_variant must be one of {ES_VARIANTS}, got {es_variant!r}.")
    if nan_policy not in ("propagate", "omit"):
        raise ValueError(f"nan_policy must be 'propagate' or 'omit', got {nan_policy!r}.")
    d = to_flat_tensor(dice, "dice", torch.float64).reshape(-1)
    i = to_flat_tensor(iou, "iou", torch.float64).reshape(-1) if iou is not None else torch.full_like(d, _NAN)
    g = to_flat_tensor(group, "group").reshape(-1)
    if not (d.numel() == i.numel() == g.numel()):
        raise ValueError(f"dice ({d.numel()}), iou ({i.numel()}) and group ({g.numel()}) differ in length.")
    if g.is_floating_point():
        if torch.isnan(g).any() or not torch.equal(g, g.round()):
            raise ValueError("`group` must hold integer group ids (no NaN).")
    g = g.long()
    if g.numel() and int(g.min()) < 0:
        raise ValueError(f"`group` ids must be >= 0, got {int(g.min())}.")
    max_g = int(g.max()) + 1 if g.numel() else 0
    if num_groups is None:
        num_groups = max(max_g, 1)
    elif max_g > num_groups:
        raise ValueError(f"unknown group id {max_g - 1}: num_groups={num_groups}.")

    nan_rows = torch.isnan(d) | (torch.isnan(i) if iou is not None else torch.zeros_like(d, dtype=torch.bool))
    nan_groups: list[int] = []
    if bool(nan_rows.any()):
        bad = torch.bincount(g[nan_rows], minlength=num_groups)
        nan_groups = torch.nonzero(bad).flatten().tolist()
        desc = ", ".join(f"{group_label(k, group_names)}: {int(bad[k])}" for k in nan_groups)
        if nan_policy == "omit":
            warnings.warn(f"dropping images with NaN Dice/IoU ({desc}).", FairnessMetricWarning, stacklevel=2)
            keep = ~nan_rows
            d, i, g = d[keep], i[keep], g[keep]
            nan_groups = []
        else:
            warnings.warn(
                f"NaN Dice/IoU ({desc}): these groups' means and the overall means are NaN.",
                FairnessMetricWarning,
                stacklevel=2,
            )

    def _stats(w: torch.Tensor | None):
        md, od, n = _group_means(d, g, num_groups, w)
        mi, oi, _ = _group_means(i, g, num_groups, w)
        return {"n": n, "dice": md, "iou": mi}, {"dice": od, "iou": oi}

    means, overall = _stats(None)
    n_g = means["n"][0]
    for k in torch.nonzero(n_g == 0).flatten().tolist():
        warnings.warn(
            f"{group_label(k, group_names)} is empty: its metrics are NaN.", FairnessMetricWarning, stacklevel=2
        )
    mask = n_g >= max(int(min_group_size), 1)
    fair = _seg_fairness(means, overall, mask, es_variant)
    if bool((mask.sum() >= 2) & torch.isnan(fair["ser"]).all()) and not torch.isnan(means["dice"][0][mask]).any():
        warnings.warn("SER is undefined (NaN): the best group has a perfect Dice.", FairnessMetricWarning, stacklevel=2)

    names = list(SEGMENTATION_GROUP_METRICS)
    result: dict[str, Any] = {
        "overall": {"n": int(d.numel()), **{m: float(overall[m][0]) for m in names}},
        "groups": {k: {"n": int(n_g[k]), **{m: float(means[m][0, k]) for m in names}} for k in range(num_groups)},
        "fairness": {m: float(fair[m][0]) for m in SEGMENTATION_FAIRNESS_METRICS},
    }
    if n_bootstrap > 0 and d.numel() > 0:
        rg: dict[str, list] = {m: [] for m in names}
        ro: dict[str, list] = {m: [] for m in names}
        rf: dict[str, list] = {m: [] for m in SEGMENTATION_FAIRNESS_METRICS}
        for w in bootstrap_weights(d.numel(), int(n_bootstrap), seed, strata=g if stratified_bootstrap else None):
            mb, ob = _stats(w)
            fb = _seg_fairness(mb, ob, mask, es_variant)
            for m in names:
                rg[m].append(mb[m])
                ro[m].append(ob[m])
            for m in SEGMENTATION_FAIRNESS_METRICS:
                rf[m].append(fb[m])
        cg = {m: percentile_ci(torch.cat(v), ci) for m, v in rg.items()}
        co = {m: percentile_ci(torch.cat(v), ci) for m, v in ro.items()}
        cf = {m: percentile_ci(torch.cat(v), ci) for m, v in rf.items()}
        result["overall"]["ci"] = {m: [float(lo), float(hi)] for m, (lo, hi) in co.items()}
        for k in range(num_groups):
            result["groups"][k]["ci"] = {m: [float(lo[k]), float(hi[k])] for m, (lo, hi) in cg.items()}
        result["fairness_ci"] = {m: [float(lo), float(hi)] for m, (lo, hi) in cf.items()}
    if nan_groups:
        for k in nan_groups:
            result["groups"][k].update({m: _NAN for m in names})
        result["overall"].update({m: _NAN for m in names})
    return result


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
        self.reduction = None if reduction in (None, "none") else reduction
        if self.reduction is not None:
            ok = self.reduction in SEGMENTATION_FAIRNESS_METRICS or self.reduction in ("overall_dice", "overall_iou")
            if not ok:
                raise ValueError(f"unknown reduction {reduction!r}.")
        self.kwargs = kwargs

    def __call__(self, y_pred: Any, y: Any = None, group: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if y is None or group is None:
            raise ValueError("GroupSegmentationMetric needs y_pred, y and group=...")
        if isinstance(y_pred, (list, tuple)):
            y_pred = torch.stack([_on_device(v, "y_pred") for v in y_pred])
        if isinstance(y, (list, tuple)):
            y = torch.stack([_on_device(v, "y") for v in y])
        ret = self._compute_tensor(_on_device(y_pred, "y_pred"), _on_device(y, "y"), group=group)
        self.extend(*ret)
        return ret

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> Any:
        group = kwargs.get("group")
        if y is None or group is None:
            raise ValueError("GroupSegmentationMetric needs y_pred, y and group=...")
        if isinstance(group, (list, tuple)):
            group = torch.stack([to_flat_tensor(v, "group").reshape(-1) for v in group])
        g = to_flat_tensor(group, "group").reshape(-1).to(torch.float64)
        d, i = compute_per_image_dice_iou(y_pred, y, include_background=self.include_background)
        if g.numel() != d.numel():
            raise ValueError(f"batch sizes differ: y_pred {d.numel()}, group {g.numel()}.")
        dev = y_pred.device  # buffers on the input device, as NCCL gathers device tensors
        return d[:, None].to(dev), i[:, None].to(dev), g[:, None].to(dev)

    def aggregate(self) -> Any:  # type: ignore[override]
        buf = self.get_buffer()
        if buf is None:
            raise ValueError("GroupSegmentationMetric has no data: call it on at least one batch first.")
        d, i, g = buf
        res = compute_group_segmentation_metrics(d[:, 0], i[:, 0], g[:, 0], self.num_groups, **self.kwargs)
        if self.reduction is None:
            return res
        if self.reduction.startswith("overall_"):
            return torch.tensor(res["overall"][self.reduction[len("overall_") :]])
        return torch.tensor(res["fairness"][self.reduction])
