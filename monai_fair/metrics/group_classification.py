# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group fairness metrics for classification: per-group performance, gaps, equity scaling, EOpp/EOdds/DP.

Functional :func:`compute_group_classification_metrics` and the cumulative :class:`GroupClassificationMetric`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric

from monai_fair.metrics.group_counts import GroupAUC, weighted_confusion
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
    "compute_group_classification_metrics",
    "GroupClassificationMetric",
    "CLASSIFICATION_GROUP_METRICS",
    "CLASSIFICATION_FAIRNESS_METRICS",
]

#: per-group (and overall) metric names, in report order
CLASSIFICATION_GROUP_METRICS = ("accuracy", "balanced_accuracy", "auc", "f1", "tpr", "fpr", "tnr", "selection_rate")
#: fairness metric names
CLASSIFICATION_FAIRNESS_METRICS = (
    "accuracy_gap",
    "balanced_accuracy_gap",
    "auc_gap",
    "f1_gap",
    "tpr_gap",
    "fpr_gap",
    "worst_group_accuracy",
    "worst_group_auc",
    "es_accuracy",
    "es_auc",
    "eopp0",
    "eopp1",
    "eodds",
    "eodds_max",
    "demographic_parity",
)

_NAN = float("nan")


def _nanmean(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    defined = ~torch.isnan(x)
    cnt = defined.sum(dim)
    s = torch.where(defined, x, torch.zeros_like(x)).sum(dim)
    return torch.where(cnt > 0, s / cnt.clamp_min(1), torch.full_like(s, _NAN))


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / b.clamp_min(1e-300), torch.full_like(a, _NAN))


def _rates(cm: torch.Tensor, binary: bool) -> dict[str, torch.Tensor]:
    """Metrics from confusion matrices ``cm (..., C, C)`` (rows = truth)."""
    tp = torch.diagonal(cm, dim1=-2, dim2=-1)
    row = cm.sum(-1)  # true counts per class
    col = cm.sum(-2)  # predicted counts per class
    n = row.sum(-1)
    fn = row - tp
    fp = col - tp
    neg = n[..., None] - row
    tn = neg - fp
    tpr_c = _div(tp, row)
    fpr_c = _div(fp, neg)
    tnr_c = _div(tn, neg)
    f1_c = _div(2 * tp, 2 * tp + fp + fn)
    rate_c = _div(col, n[..., None].expand_as(col))
    out = {
        "n": n,
        "accuracy": _div(tp.sum(-1), n),
        "balanced_accuracy": _nanmean(tpr_c),
        "tpr_c": tpr_c,
        "fpr_c": fpr_c,
        "tnr_c": tnr_c,
        "rate_c": rate_c,
    }
    if binary:
        out.update(
            f1=f1_c[..., 1], tpr=tpr_c[..., 1], fpr=fpr_c[..., 1], tnr=tnr_c[..., 1], selection_rate=rate_c[..., 1]
        )
    else:
        out.update(f1=_nanmean(f1_c), tpr=_nanmean(tpr_c), fpr=_nanmean(fpr_c), tnr=_nanmean(tnr_c))
    return out


def _make_auc(
    s_cols: torch.Tensor | None, y: torch.Tensor, group: torch.Tensor, num_groups: int, num_classes: int, binary: bool
) -> GroupAUC | None:
    """The sorted structure for per-group AUC (built once, reused by every bootstrap chunk)."""
    if s_cols is None:
        return None
    positive = (y == 1)[:, None] if binary else y[:, None] == torch.arange(num_classes)[None, :]
    return GroupAUC(s_cols, positive, group, num_groups)


def _stats(
    auc_fn: GroupAUC | None,
    y: torch.Tensor,
    y_hat: torch.Tensor,
    group: torch.Tensor,
    num_groups: int,
    num_classes: int,
    binary: bool,
    weights: torch.Tensor | None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-group ``(B, G, ...)`` and overall ``(B, ...)`` statistics for one or many replicates."""
    cm = weighted_confusion(y, y_hat, group, num_groups, num_classes, weights)
    per_group = _rates(cm, binary)
    overall = _rates(cm.sum(1), binary)
    b = cm.shape[0]
    if auc_fn is None:
        per_group["auc"] = torch.full((b, num_groups), _NAN, dtype=torch.float64)
        overall["auc"] = torch.full((b,), _NAN, dtype=torch.float64)
        return per_group, overall
    auc_g, auc_all = auc_fn(weights)
    per_group["auc"] = auc_g[..., 0] if binary else _nanmean(auc_g)
    overall["auc"] = auc_all[:, 0] if binary else _nanmean(auc_all)
    return per_group, overall


def _fairness(
    per_group: dict[str, torch.Tensor],
    overall: dict[str, torch.Tensor],
    mask: torch.Tensor,
    binary: bool,
    form: str,
) -> dict[str, torch.Tensor]:
    """Fairness metrics over the groups in ``mask`` for every replicate (leading dims)."""
    out: dict[str, torch.Tensor] = {}
    for m in ("accuracy", "balanced_accuracy", "auc", "f1", "tpr", "fpr"):
        out[f"{m}_gap"] = masked_range(per_group[m], mask)
    out["worst_group_accuracy"] = masked_min(per_group["accuracy"], mask)
    out["worst_group_auc"] = masked_min(per_group["auc"], mask)
    out["es_accuracy"] = equity_scaled(overall["accuracy"], per_group["accuracy"], mask)
    out["es_auc"] = equity_scaled(overall["auc"], per_group["auc"], mask)

    cmask = mask[:, None]  # (G, 1) broadcasts over classes of (..., G, C)
    tpr_c, fpr_c, tnr_c, rate_c = per_group["tpr_c"], per_group["fpr_c"], per_group["tnr_c"], per_group["rate_c"]
    if binary:  # positive class only: the standard binary definitions
        tpr_c, fpr_c, tnr_c, rate_c = (t[..., 1:] for t in (tpr_c, fpr_c, tnr_c, rate_c))
    eodd_c = 0.5 * (tpr_c + fpr_c)
    if form == "signed":  # two groups, SCP signed form: group 0 minus group 1
        idx = torch.nonzero(mask).flatten()
        if idx.numel() != 2:
            nan = torch.full(tpr_c.shape[:-2], _NAN, dtype=torch.float64)
            out.update(eopp0=nan, eopp1=nan.clone(), eodds=nan.clone())
        else:
            g0, g1 = int(idx[0]), int(idx[1])
            out["eopp0"] = _nanmean(tnr_c[..., g0, :] - tnr_c[..., g1, :])
            out["eopp1"] = _nanmean(tpr_c[..., g0, :] - tpr_c[..., g1, :])
            out["eodds"] = _nanmean(eodd_c[..., g0, :] - eodd_c[..., g1, :])
    else:  # range over groups per class (= the absolute two-group form), mean over classes
        out["eopp0"] = _nanmean(masked_range(tnr_c, cmask, dim=-2))
        out["eopp1"] = _nanmean(masked_range(tpr_c, cmask, dim=-2))
        out["eodds"] = _nanmean(masked_range(eodd_c, cmask, dim=-2))
    out["eodds_max"] = masked_max(
        torch.stack([_nanmean(masked_range(tpr_c, cmask, dim=-2)), _nanmean(masked_range(fpr_c, cmask, dim=-2))], -1)
    )
    dp_c = masked_range(rate_c, cmask, dim=-2)
    defined = ~torch.isnan(dp_c)
    out["demographic_parity"] = torch.where(
        defined.any(-1), torch.where(defined, dp_c, torch.zeros_like(dp_c)).sum(-1), torch.full_like(dp_c[..., 0], _NAN)
    )
    return out


def _prepare(
    y_score: Any,
    y: Any,
    group: Any,
    num_groups: int | None,
    threshold: float,
    y_pred: Any,
    num_classes: int | None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int, bool]:
    """Validate and convert the inputs; returns (score columns, y, y_hat, group, nan_rows, G, C, binary)."""
    yt = to_flat_tensor(y, "y")
    if yt.ndim == 2 and yt.shape[1] > 1:  # one-hot labels
        yt = yt.argmax(1)
    yt = yt.reshape(-1)
    n = yt.numel()
    gt = to_flat_tensor(group, "group").reshape(-1)
    if gt.numel() != n:
        raise ValueError(f"`group` has {gt.numel()} entries but `y` has {n}.")
    if gt.is_floating_point():
        if torch.isnan(gt).any():
            raise ValueError("`group` contains NaN; every sample needs a group id.")
        if not torch.equal(gt, gt.round()):
            raise ValueError("`group` must hold integer group ids.")
    gt = gt.long()
    if n and int(gt.min()) < 0:
        raise ValueError(f"`group` ids must be >= 0, got {int(gt.min())}.")
    max_g = int(gt.max()) + 1 if n else 0
    if num_groups is None:
        num_groups = max(max_g, 1)
    elif max_g > num_groups:
        raise ValueError(f"unknown group id {max_g - 1}: num_groups={num_groups}.")

    nan_rows = torch.zeros(n, dtype=torch.bool)
    if yt.is_floating_point():
        nan_rows |= torch.isnan(yt)
        yt = torch.nan_to_num(yt, nan=0.0)
        if not torch.equal(yt, yt.round()):
            raise ValueError("`y` must hold integer class labels (or one-hot rows).")
    yt = yt.long()

    s_cols = None
    binary = True
    if y_score is not None:
        st = to_flat_tensor(y_score, "y_score", torch.float64)
        if st.ndim == 1 or (st.ndim == 2 and st.shape[1] == 1):
            st = st.reshape(-1, 1)
            c_score = 2
        elif st.ndim == 2:
            c_score = st.shape[1]
        else:
            raise ValueError(f"`y_score` must be (N,) or (N, C), got shape {tuple(st.shape)}.")
        if st.shape[0] != n:
            raise ValueError(f"`y_score` has {st.shape[0]} rows but `y` has {n}.")
        nan_rows |= torch.isnan(st).any(1)
        st = torch.nan_to_num(st, nan=0.0)
        num_classes = c_score if num_classes is None else num_classes
        if num_classes != c_score:
            raise ValueError(f"num_classes={num_classes} but `y_score` has {c_score} class columns.")
        binary = c_score == 2
        if binary:
            s_cols = st[:, -1:].contiguous()  # positive-class probability
            y_hat = (s_cols[:, 0] >= threshold).long()
        else:
            s_cols = st
            y_hat = st.argmax(1)
    if y_pred is not None:
        yp = to_flat_tensor(y_pred, "y_pred")
        if yp.ndim == 2 and yp.shape[1] > 1:
            yp = yp.argmax(1)
        yp = yp.reshape(-1)
        if yp.numel() != n:
            raise ValueError(f"`y_pred` has {yp.numel()} entries but `y` has {n}.")
        if yp.is_floating_point():
            nan_rows |= torch.isnan(yp)
            yp = torch.nan_to_num(yp, nan=0.0)
        y_hat = yp.long()
        if y_score is None:
            top = max(int(yt.max()) if n else 0, int(y_hat.max()) if n else 0) + 1
            num_classes = max(top, 2) if num_classes is None else num_classes
            binary = num_classes == 2
    elif y_score is None:
        raise ValueError("give `y_score` (probabilities) and/or `y_pred` (predicted labels).")
    assert num_classes is not None
    if n and (int(yt.min()) < 0 or int(yt.max()) >= num_classes):
        raise ValueError(f"`y` labels must be in [0, {num_classes}), got [{int(yt.min())}, {int(yt.max())}].")
    if n and (int(y_hat.min()) < 0 or int(y_hat.max()) >= num_classes):
        raise ValueError(f"`y_pred` labels must be in [0, {num_classes}).")
    return s_cols, yt, y_hat, gt, nan_rows, num_groups, num_classes, binary


def _warn_undefined(
    n_g: torch.Tensor,
    y: torch.Tensor,
    group: torch.Tensor,
    num_classes: int,
    binary: bool,
    group_names: Sequence[str] | None,
    has_scores: bool,
) -> None:
    num_groups = n_g.numel()
    present = (
        torch.bincount(group * num_classes + y, minlength=num_groups * num_classes).view(num_groups, num_classes) > 0
    )
    n_cls = present.sum(1)
    for g in torch.nonzero(n_g == 0).flatten().tolist():
        warnings.warn(
            f"{group_label(g, group_names)} is empty: its metrics are NaN.", FairnessMetricWarning, stacklevel=3
        )
    for g in torch.nonzero((n_g > 0) & (n_cls < 2)).flatten().tolist():
        what = "AUC, TPR/FPR and F1" if binary else "AUC and the class-wise rates"
        warnings.warn(
            f"{group_label(g, group_names)} has a single class: its {what} are NaN where undefined.",
            FairnessMetricWarning,
            stacklevel=3,
        )
    if not binary and has_scores:
        for g in torch.nonzero((n_cls >= 2) & (n_cls < num_classes)).flatten().tolist():
            warnings.warn(
                f"{group_label(g, group_names)} has {int(n_cls[g])} of {num_classes} classes: its macro AUC, TPR, "
                "FPR and F1 average the classes where they are defined.",
                FairnessMetricWarning,
                stacklevel=3,
            )


def _to_dict(t: dict[str, torch.Tensor], names: Sequence[str], index: tuple = ()) -> dict[str, float]:
    return {k: float(t[k][(0, *index)].item()) for k in names if k in t}


def compute_group_classification_metrics(
    y_score: Any,
    y: Any,
    group: Any,
    num_groups: int | None = None,
    threshold: float = 0.5,
    *,
    y_pred: Any = None,
    num_classes: int | None = None,
    group_names: Sequence[str] | None = None,
    min_group_size: int = 1,
    fairness_form: str = "range",
    nan_policy: str = "propagate",
    n_bootstrap: int = 0,
    ci: float = 0.95,
    seed: int = 0,
    stratified_bootstrap: bool = False,
) -> dict[str, Any]:
    """Per-group classification performance and group fairness metrics, fully vectorised.

    Per group ``g`` (and overall): ``n``, ``accuracy``, ``balanced_accuracy`` (mean recall over the classes present,
    as ``sklearn.metrics.balanced_accuracy_score``), ``auc`` (ROC AUC, Mann-Whitney with ties counted 1/2),
    ``f1``, ``tpr``, ``fpr``, ``tnr`` and, for binary tasks, ``selection_rate`` (P(y_hat = 1)).
    Binary tasks use the positive class (label 1). Multi-class tasks are one-vs-rest and macro-averaged over
    the classes where a value is defined (``tpr`` then equals ``balanced_accuracy``; ``f1`` equals sklearn's
    ``f1_score(average="macro")``; ``auc`` equals ``roc_auc_score(multi_class="ovr")`` when all classes are
    present).

    Fairness, over the groups with ``n >= min_group_size`` where the metric is defined:

    * ``{m}_gap = max_g M_g - min_g M_g`` for accuracy, balanced accuracy, AUC, F1, TPR, FPR;
      ``worst_group_accuracy``, ``worst_group_auc = min_g M_g``.
    * ``es_auc``, ``es_accuracy``: equity scaling of Harvard-GF / FairSeg,
      :math:`M_{all} / (1 + \\sum_g |M_{all} - M_g|)`.
    * ``eopp0``, ``eopp1``, ``eodds``, ``demographic_parity`` as in the public code of SCP (Kong et al.,
      "Achieving fairness through channel pruning", MICCAI 2023; ``fairness_metric.py``), which is one-vs-rest
      over classes for exactly two groups: EOpp0 = mean_c dTNR_c, EOpp1 = mean_c dTPR_c,
      EOdd = mean_c 1/2 (dTPR_c + dFPR_c), DP = sum_c d(P(y_hat = c)).
      **Generalisation to K groups** (``fairness_form="range"``, default): the per-class difference ``d`` is
      the range ``max_g - min_g`` over groups (of TNR, TPR, (TPR + FPR)/2 and the predicted-class rate), i.e.
      the largest pairwise absolute difference; for two groups it equals SCP's absolute variant
      (``|dTPR + dFPR|/2`` per class for EOdd). ``fairness_form="signed"`` gives SCP's signed form
      ``group_0 - group_1`` (two included groups only; else NaN). DP is always the absolute form (the signed
      class-sum is identically zero). For binary tasks only the positive class is used (the usual binary
      definitions; DP = range of the selection rate, fairlearn's ``demographic_parity_difference``).
    * ``eodds_max = max(mean_c range TPR_c, mean_c range FPR_c)`` (fairlearn's ``equalized_odds_difference``
      for binary tasks).

    Undefined values (empty group, group with one class, NaN inputs) are NaN with a
    :class:`~monai_fair.metrics.utils.FairnessMetricWarning` naming the group; they never raise.

    Args:
        y_score: ``(N,)`` positive-class probabilities, or ``(N, C)`` class probabilities (``C = 2`` is binary,
            column 1 positive). May be ``None`` when ``y_pred`` is given (AUC is then NaN).
        y: ``(N,)`` integer labels or ``(N, C)`` one-hot.
        group: ``(N,)`` integer group ids ``0..K-1``.
        num_groups: ``K``; default ``max(group) + 1``. Groups absent from the data are empty (NaN, warned).
        threshold: decision threshold on the positive-class probability (binary); multi-class uses argmax.
        y_pred: optional predicted labels ``(N,)`` (or one-hot) overriding the thresholded/argmax prediction.
        num_classes: number of classes when only ``y_pred`` is given.
        group_names: names used in warnings.
        min_group_size: groups with fewer samples are left out of every fairness aggregate.
        fairness_form: ``"range"`` (K groups, absolute) or ``"signed"`` (two groups, SCP signed form).
        nan_policy: ``"propagate"`` (a group with a NaN score or label gets NaN metrics, and so does
            ``overall``) or ``"omit"`` (those samples are dropped, with a warning).
        n_bootstrap: number of seeded bootstrap replicates for percentile confidence intervals (0: none).
        ci: confidence level of the intervals.
        seed: bootstrap seed.
        stratified_bootstrap: resample within each group (keeps the group sizes; see
            :func:`~monai_fair.metrics.utils.bootstrap_weights`) instead of over all samples jointly.

    Returns:
        ``{"overall": {...}, "groups": {gid: {...}}, "fairness": {...}}`` of Python floats (``n`` as int).
        With ``n_bootstrap > 0`` every group and ``overall`` get ``"ci": {metric: [lo, hi]}`` and the result
        gets ``"fairness_ci"``.
    """
    if fairness_form not in ("range", "signed"):
        raise ValueError(f"fairness_form must be 'range' or 'signed', got {fairness_form!r}.")
    if nan_policy not in ("propagate", "omit"):
        raise ValueError(f"nan_policy must be 'propagate' or 'omit', got {nan_policy!r}.")
    s_cols, yt, y_hat, gt, nan_rows, num_groups, num_classes, binary = _prepare(
        y_score, y, group, num_groups, threshold, y_pred, num_classes
    )
    nan_groups: list[int] = []
    if bool(nan_rows.any()):
        bad = torch.bincount(gt[nan_rows], minlength=num_groups)
        nan_groups = torch.nonzero(bad).flatten().tolist()
        desc = ", ".join(f"{group_label(g, group_names)}: {int(bad[g])}" for g in nan_groups)
        if nan_policy == "omit":
            warnings.warn(f"dropping samples with NaN scores/labels ({desc}).", FairnessMetricWarning, stacklevel=2)
            keep = ~nan_rows
            yt, y_hat, gt = yt[keep], y_hat[keep], gt[keep]
            s_cols = s_cols[keep] if s_cols is not None else None
            nan_groups = []
        else:
            warnings.warn(
                f"NaN scores/labels ({desc}): these groups' metrics and the overall metrics are NaN.",
                FairnessMetricWarning,
                stacklevel=2,
            )

    auc_fn = _make_auc(s_cols, yt, gt, num_groups, num_classes, binary)
    per_group, overall = _stats(auc_fn, yt, y_hat, gt, num_groups, num_classes, binary, None)
    n_g = per_group["n"][0]
    _warn_undefined(n_g, yt, gt, num_classes, binary, group_names, s_cols is not None)
    mask = n_g >= max(int(min_group_size), 1)

    def _apply_nan(pg: dict[str, torch.Tensor], ov: dict[str, torch.Tensor]) -> None:
        if not nan_groups:
            return
        gidx = torch.tensor(nan_groups)
        for k, v in pg.items():
            if k != "n":
                v[:, gidx] = _NAN
        for k, v in ov.items():
            if k != "n":
                v[:] = _NAN

    _apply_nan(per_group, overall)
    fair = _fairness(per_group, overall, mask, binary, fairness_form)

    names = [m for m in CLASSIFICATION_GROUP_METRICS if m in overall]
    result: dict[str, Any] = {
        "overall": {"n": int(yt.numel()), **_to_dict(overall, names)},
        "groups": {g: {"n": int(n_g[g].item()), **_to_dict(per_group, names, (g,))} for g in range(num_groups)},
        "fairness": _to_dict(fair, CLASSIFICATION_FAIRNESS_METRICS),
    }
    if n_bootstrap > 0 and yt.numel() > 0:
        reps_g: dict[str, list[torch.Tensor]] = {m: [] for m in names}
        reps_o: dict[str, list[torch.Tensor]] = {m: [] for m in names}
        reps_f: dict[str, list[torch.Tensor]] = {m: [] for m in CLASSIFICATION_FAIRNESS_METRICS}
        for w in bootstrap_weights(yt.numel(), int(n_bootstrap), seed, strata=gt if stratified_bootstrap else None):
            pg, ov = _stats(auc_fn, yt, y_hat, gt, num_groups, num_classes, binary, w)
            _apply_nan(pg, ov)
            fb = _fairness(pg, ov, mask, binary, fairness_form)
            for m in names:
                reps_g[m].append(pg[m])
                reps_o[m].append(ov[m])
            for m in CLASSIFICATION_FAIRNESS_METRICS:
                reps_f[m].append(fb[m])
        ci_g = {m: percentile_ci(torch.cat(v), ci) for m, v in reps_g.items()}
        ci_o = {m: percentile_ci(torch.cat(v), ci) for m, v in reps_o.items()}
        ci_f = {m: percentile_ci(torch.cat(v), ci) for m, v in reps_f.items()}
        result["overall"]["ci"] = {m: [float(lo), float(hi)] for m, (lo, hi) in ci_o.items()}
        for g in range(num_groups):
            result["groups"][g]["ci"] = {m: [float(lo[g]), float(hi[g])] for m, (lo, hi) in ci_g.items()}
        result["fairness_ci"] = {m: [float(lo), float(hi)] for m, (lo, hi) in ci_f.items()}
    return result


def _stack_batch(x: Any, name: str) -> torch.Tensor:
    """A batch-first tensor from a batch tensor or a MONAI decollated list of channel-first items."""

    def _one(v: Any) -> torch.Tensor:
        if isinstance(v, torch.Tensor):  # keep the device: NCCL gathers device tensors
            v = v.detach()
            return v.as_tensor() if hasattr(v, "as_tensor") else v
        return to_flat_tensor(v, name)

    if isinstance(x, (list, tuple)):
        items = [_one(v) for v in x]
        if not items:
            return torch.zeros(0)
        return torch.stack([i.reshape(-1) if i.ndim <= 1 else i for i in items])
    return _one(x)


class GroupClassificationMetric(CumulativeIterationMetric):
    """Cumulative group fairness metric for classification (see :func:`compute_group_classification_metrics`).

    Call as ``metric(y_pred, y, group=group)`` once per iteration; ``aggregate()`` computes the metrics on
    everything buffered. ``y_pred`` must be **probabilities** (apply ``Activations(softmax=True)`` or
    ``sigmoid=True`` in postprocessing): ``(B,)``/``(B, 1)`` positive-class probability or ``(B, C)`` class
    probabilities; one-hot predictions (``AsDiscrete(argmax=True, to_onehot=C)``) also work but then AUC is
    computed from hard labels. ``y`` is ``(B,)``/``(B, 1)`` class ids or ``(B, C)`` one-hot. Batch tensors and
    MONAI decollated lists of per-sample tensors are both accepted. Scores, labels and groups are kept in the
    cumulative buffers, so ``get_buffer()`` gathers them across DDP ranks before aggregation.

    Args:
        num_groups: number of groups ``K`` (default: inferred from the data).
        threshold: decision threshold for binary tasks.
        reduction: ``None``/``"none"`` returns the full result dict; a fairness key (e.g. ``"worst_group_auc"``,
            ``"es_auc"``, ``"auc_gap"``, ``"eodds"``) or ``"overall_<metric>"`` returns that value as a scalar
            tensor (for an Ignite key metric).
        kwargs: further arguments of :func:`compute_group_classification_metrics` (``group_names``,
            ``min_group_size``, ``fairness_form``, ``nan_policy``, ``n_bootstrap``, ...).
    """

    def __init__(
        self,
        num_groups: int | None = None,
        threshold: float = 0.5,
        reduction: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.num_groups = num_groups
        self.threshold = threshold
        self.reduction = None if reduction in (None, "none") else reduction
        if self.reduction is not None:
            key = self.reduction[len("overall_") :] if self.reduction.startswith("overall_") else self.reduction
            valid = (
                CLASSIFICATION_GROUP_METRICS
                if self.reduction.startswith("overall_")
                else CLASSIFICATION_FAIRNESS_METRICS
            )
            if key not in valid:
                raise ValueError(f"unknown reduction {reduction!r}; use None, a fairness key or 'overall_<metric>'.")
        self.kwargs = kwargs

    def __call__(self, y_pred: Any, y: Any = None, group: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if y is None or group is None:
            raise ValueError("GroupClassificationMetric needs y_pred, y and group=...")
        ret = self._compute_tensor(_stack_batch(y_pred, "y_pred"), _stack_batch(y, "y"), group=group)
        self.extend(*ret)
        return ret

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> Any:
        group = kwargs.get("group")
        if y is None or group is None:
            raise ValueError("GroupClassificationMetric needs y_pred, y and group=...")
        score = y_pred.to(torch.float64)
        g = _stack_batch(group, "group").reshape(-1).to(device=score.device, dtype=torch.float64)
        score = score.reshape(score.shape[0], -1) if score.ndim > 1 else score.reshape(-1, 1)
        lab = y.to(device=score.device, dtype=torch.float64)
        lab = lab.reshape(lab.shape[0], -1) if lab.ndim > 1 else lab.reshape(-1, 1)
        if lab.shape[1] > 1:
            lab = lab.argmax(1, keepdim=True).to(torch.float64)
        if not (score.shape[0] == lab.shape[0] == g.shape[0]):
            raise ValueError(f"batch sizes differ: y_pred {score.shape[0]}, y {lab.shape[0]}, group {g.shape[0]}.")
        return score, lab, g[:, None]

    def aggregate(self) -> Any:  # type: ignore[override]
        buf = self.get_buffer()
        if buf is None:
            raise ValueError("GroupClassificationMetric has no data: call it on at least one batch first.")
        score, lab, g = buf
        y_score = score[:, 0] if score.shape[1] == 1 else score
        res = compute_group_classification_metrics(
            y_score, lab[:, 0], g[:, 0], self.num_groups, self.threshold, **self.kwargs
        )
        if self.reduction is None:
            return res
        if self.reduction.startswith("overall_"):
            return torch.tensor(res["overall"][self.reduction[len("overall_") :]])
        return torch.tensor(res["fairness"][self.reduction])
