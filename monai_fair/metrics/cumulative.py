# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Cumulative (iteration) group metrics for MONAI workflows: :class:`GroupClassificationMetric` and
:class:`GroupSegmentationMetric`, and the per-image Dice/IoU they buffer for segmentation.

This is the one module of :mod:`monai_fair.metrics` that imports MONAI (its ``CumulativeIterationMetric`` is
subclassed, its ``compute_dice``/``compute_iou`` are used); the statistics below it
(:func:`~monai_fair.metrics.compute_group_classification_metrics`,
:func:`~monai_fair.metrics.compute_group_segmentation_metrics`, intervals, verdicts) import only torch and numpy.
:class:`GroupCumulativeMetric` owns what both tasks share: the ``(y_pred, y, group[, cluster])`` call, the
buffering of one row per case (gathered across DDP ranks by ``get_buffer()``), the cluster column and
``aggregate``; a task adds only its per-batch tensors and its ``compute_*`` function.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric, compute_dice, compute_iou
from monai.networks.utils import one_hot

from monai_fair.metrics.core import check_reduction, reduce_result
from monai_fair.metrics.group_classification import (
    CLASSIFICATION_FAIRNESS_METRICS,
    CLASSIFICATION_GROUP_METRICS,
    compute_group_classification_metrics,
)
from monai_fair.metrics.group_segmentation import (
    SEGMENTATION_FAIRNESS_METRICS,
    SEGMENTATION_GROUP_METRICS,
    compute_group_segmentation_metrics,
)
from monai_fair.metrics.utils import to_flat_tensor

__all__ = [
    "GroupCumulativeMetric",
    "GroupClassificationMetric",
    "GroupSegmentationMetric",
    "compute_per_image_dice_iou",
]


def _on_device(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):  # keep the device: NCCL gathers device tensors
        x = x.detach()
        return x.as_tensor() if hasattr(x, "as_tensor") else x
    return to_flat_tensor(x, name)


def _stack_batch(x: Any, name: str) -> torch.Tensor:
    """A batch-first tensor from a batch tensor or a MONAI decollated list of channel-first items."""
    if isinstance(x, (list, tuple)):
        items = [_on_device(v, name) for v in x]
        if not items:
            return torch.zeros(0)
        return torch.stack([i.reshape(-1) if i.ndim <= 1 else i for i in items])
    return _on_device(x, name)


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


class GroupCumulativeMetric(CumulativeIterationMetric):
    """Base of the cumulative group metrics: call as ``metric(y_pred, y, group=group[, cluster=patient_ids])`` once
    per iteration; ``aggregate()`` runs the task's ``compute_*`` function on everything buffered.

    A subclass sets ``group_metrics``/``fairness_metrics`` (the names its ``reduction`` may pick) and implements
    :meth:`_rows` (the per-case ``float64`` columns of one batch, ``(B, k)`` each, on the input device) and
    :meth:`_compute` (the result dictionary from the buffered columns). The group and cluster columns are added
    here: the buffer holds ``(*rows, group[, cluster])``, one row per case, never masks or images.

    Args:
        num_groups: number of groups ``K`` (default: inferred from the data).
        reduction: ``None``/``"none"`` returns the full result dict; a fairness key or ``"overall_<metric>"``
            returns that value as a scalar tensor (for an Ignite key metric).
        kwargs: further arguments of the task's ``compute_*`` function (``group_names``, ``min_group_size``,
            ``n_bootstrap``, ...).
    """

    group_metrics: tuple[str, ...] = ()
    fairness_metrics: tuple[str, ...] = ()
    #: what each per-case column of :meth:`_rows` comes from (named in a batch-size error)
    _row_names: tuple[str, ...] = ()

    def __init__(self, num_groups: int | None = None, reduction: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.num_groups = num_groups
        self.reduction = check_reduction(reduction, self.group_metrics, self.fairness_metrics)
        self.kwargs = kwargs

    def _missing(self) -> ValueError:
        return ValueError(f"{type(self).__name__} needs y_pred, y and group=...")

    def __call__(self, y_pred: Any, y: Any = None, group: Any = None, cluster: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if y is None or group is None:
            raise self._missing()
        ret = self._compute_tensor(_stack_batch(y_pred, "y_pred"), _stack_batch(y, "y"), group=group, cluster=cluster)
        self.extend(*ret)
        return ret

    def _rows(self, y_pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _compute(self, rows: tuple[torch.Tensor, ...], group: torch.Tensor, kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> Any:
        group, cluster = kwargs.get("group"), kwargs.get("cluster")
        if y is None or group is None:
            raise self._missing()
        rows = self._rows(y_pred, y)
        dev = rows[0].device
        g = _stack_batch(group, "group").reshape(-1, 1).to(device=dev, dtype=torch.float64)
        if any(r.shape[0] != g.shape[0] for r in rows):
            named = {n: r.shape[0] for n, r in zip(self._row_names, rows)}
            sizes = ", ".join(f"{n} {s}" for n, s in named.items())
            raise ValueError(f"batch sizes differ: {sizes}, group {g.shape[0]}.")
        if cluster is None:
            return (*rows, g)
        cl = _stack_batch(cluster, "cluster").reshape(-1, 1).to(device=dev, dtype=torch.float64)
        if cl.shape[0] != g.shape[0]:
            raise ValueError(f"batch sizes differ: cluster {cl.shape[0]}, group {g.shape[0]}.")
        return (*rows, g, cl)

    def aggregate(self) -> Any:  # type: ignore[override]
        buf = self.get_buffer()
        if buf is None:
            raise ValueError(f"{type(self).__name__} has no data: call it on at least one batch first.")
        n = len(self._row_names)
        kwargs = dict(self.kwargs)
        if len(buf) == n + 2:
            kwargs["cluster"] = buf[n + 1][:, 0]
        return reduce_result(self._compute(tuple(buf[:n]), buf[n][:, 0], kwargs), self.reduction)


class GroupClassificationMetric(GroupCumulativeMetric):
    """Cumulative group fairness metric for classification (see :func:`compute_group_classification_metrics`).

    Call as ``metric(y_pred, y, group=group)`` (or with ``cluster=patient_ids`` for the cluster bootstrap) once per
    iteration; ``aggregate()`` computes the metrics on everything buffered. ``y_pred`` must be **probabilities**
    (apply ``Activations(softmax=True)`` or ``sigmoid=True`` in postprocessing): ``(B,)``/``(B, 1)`` positive-class
    probability or ``(B, C)`` class probabilities; one-hot predictions (``AsDiscrete(argmax=True, to_onehot=C)``)
    also work but then AUC is computed from hard labels. ``y`` is ``(B,)``/``(B, 1)`` class ids or ``(B, C)``
    one-hot. Batch tensors and MONAI decollated lists of per-sample tensors are both accepted. Scores, labels,
    groups (and numeric cluster ids) are kept in the cumulative buffers, so ``get_buffer()`` gathers them across
    DDP ranks before aggregation.

    Args:
        num_groups: number of groups ``K`` (default: inferred from the data).
        threshold: decision threshold for binary tasks.
        reduction: ``None``/``"none"`` returns the full result dict; a fairness key (e.g. ``"worst_group_auc"``,
            ``"es_auc"``, ``"auc_gap"``, ``"eodds"``) or ``"overall_<metric>"`` returns that value as a scalar
            tensor (for an Ignite key metric).
        kwargs: further arguments of :func:`compute_group_classification_metrics` (``group_names``,
            ``min_group_size``, ``fairness_form``, ``nan_policy``, ``n_bootstrap``, ...).
    """

    group_metrics = CLASSIFICATION_GROUP_METRICS
    fairness_metrics = CLASSIFICATION_FAIRNESS_METRICS
    _row_names = ("y_pred", "y")

    def __init__(
        self, num_groups: int | None = None, threshold: float = 0.5, reduction: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(num_groups, reduction, **kwargs)
        self.threshold = threshold

    def _rows(self, y_pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        score = y_pred.to(torch.float64)
        score = score.reshape(score.shape[0], -1) if score.ndim > 1 else score.reshape(-1, 1)
        lab = y.to(device=score.device, dtype=torch.float64)
        lab = lab.reshape(lab.shape[0], -1) if lab.ndim > 1 else lab.reshape(-1, 1)
        if lab.shape[1] > 1:
            lab = lab.argmax(1, keepdim=True).to(torch.float64)
        return score, lab

    def _compute(self, rows: tuple[torch.Tensor, ...], group: torch.Tensor, kwargs: dict[str, Any]) -> Any:
        score, lab = rows
        y_score = score[:, 0] if score.shape[1] == 1 else score
        return compute_group_classification_metrics(
            y_score, lab[:, 0], group, self.num_groups, self.threshold, **kwargs
        )


class GroupSegmentationMetric(GroupCumulativeMetric):
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

    group_metrics = SEGMENTATION_GROUP_METRICS
    fairness_metrics = SEGMENTATION_FAIRNESS_METRICS
    _row_names = ("y_pred", "y_pred")

    def __init__(
        self,
        num_groups: int | None = None,
        include_background: bool = False,
        reduction: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_groups, reduction, **kwargs)
        self.include_background = include_background

    def _rows(self, y_pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d, i = compute_per_image_dice_iou(y_pred, y, include_background=self.include_background)
        dev = y_pred.device  # buffers on the input device, as NCCL gathers device tensors
        return d[:, None].to(dev), i[:, None].to(dev)

    def _compute(self, rows: tuple[torch.Tensor, ...], group: torch.Tensor, kwargs: dict[str, Any]) -> Any:
        d, i = rows
        return compute_group_segmentation_metrics(d[:, 0], i[:, 0], group, self.num_groups, **kwargs)
