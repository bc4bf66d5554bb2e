# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Thin Ignite handlers for the group fairness metrics: MONAI's ``IgniteMetricHandler`` whose ``update`` takes
``(y_pred, y, group)`` or, for the cluster bootstrap, ``(y_pred, y, group, cluster)``.

Suppression (``min_group_size``) happens inside the metric, so every value the engine logs (console, metrics.csv,
TensorBoard, MLflow) is already computed over the reported groups only; a group-level figure with fewer than two
reported groups is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.handlers import IgniteMetricHandler, from_engine
from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.metrics.cumulative import GroupClassificationMetric, GroupSegmentationMetric

reinit__is_reduced, _ = optional_import(
    "ignite.metrics.metric", IgniteInfo.OPT_IMPORT_VERSION, min_version, "reinit__is_reduced", as_type="decorator"
)

__all__ = ["GroupClassificationMetricHandler", "GroupSegmentationMetricHandler"]


def _default_transform(output_transform: Callable | None, cluster_key: str | None) -> Callable:
    if output_transform is not None:
        return output_transform
    return from_engine(["pred", "label", "group"] + ([cluster_key] if cluster_key else []))


class _GroupMetricHandler(IgniteMetricHandler):
    """``IgniteMetricHandler`` whose ``update`` takes ``(y_pred, y, group[, cluster])``; ``compute`` is MONAI's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ignite >= 0.5 "unrolls" list outputs into (y_pred, y) pairs; a group metric takes three items per batch.
        self._skip_unrolling = True

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        """
        Args:
            output: ``(y_pred, y, group)`` or ``(y_pred, y, group, cluster)`` from ``output_transform``.

        Raises:
            ValueError: when ``output`` does not have three or four items.
        """
        if len(output) not in (3, 4):
            raise ValueError(
                f"{type(self).__name__} needs output_transform to return (y_pred, y, group) or (y_pred, y, group, "
                f"cluster), got {len(output)} items; use output_transform=from_engine(['pred', 'label', 'group'])."
            )
        self.metric_fn(output[0], output[1], group=output[2], cluster=output[3] if len(output) == 4 else None)


class GroupClassificationMetricHandler(_GroupMetricHandler):
    """Ignite handler of :class:`monai_fair.metrics.GroupClassificationMetric`.

    ``y_pred`` must be probabilities (``Activations`` in postprocessing) or one-hot; ``y`` class ids or one-hot.

    Args:
        num_groups: number of groups (default: inferred).
        threshold: binary decision threshold.
        reduction: the scalar to report (e.g. ``"worst_group_auc"``, ``"es_auc"``, ``"auc_gap"``) so it can serve
            as ``key_metric``; ``None`` gives the whole result dict.
        output_transform: returns ``(y_pred, y, group)`` (or with ``cluster``); default
            ``from_engine(["pred", "label", "group"])`` plus ``cluster_key`` when given.
        save_details: store the gathered per-sample (score, label, group) buffers in
            ``engine.state.metric_details`` (default False: these are per-patient data).
        cluster_key: batch key of numeric patient ids for the cluster bootstrap (``n_bootstrap > 0``) and the
            cluster-robust DeLong intervals.
        kwargs: further arguments of :func:`monai_fair.metrics.compute_group_classification_metrics`
            (``min_group_size``, ``n_bootstrap``, ...).
    """

    def __init__(
        self,
        num_groups: int | None = None,
        threshold: float = 0.5,
        reduction: str | None = "worst_group_auc",
        output_transform: Callable | None = None,
        save_details: bool = False,
        cluster_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        metric_fn = GroupClassificationMetric(num_groups=num_groups, threshold=threshold, reduction=reduction, **kwargs)
        transform = _default_transform(output_transform, cluster_key)
        super().__init__(metric_fn=metric_fn, output_transform=transform, save_details=save_details)


class GroupSegmentationMetricHandler(_GroupMetricHandler):
    """Ignite handler of :class:`monai_fair.metrics.GroupSegmentationMetric` (per-image Dice/IoU per group).

    Args:
        num_groups: number of groups (default: inferred).
        include_background: include channel 0 in the per-image Dice/IoU.
        reduction: the scalar to report (e.g. ``"worst_group_dice"``, ``"es_dice"``, ``"dice_gap"``, ``"ser"``);
            ``None`` gives the whole result dict.
        output_transform: returns ``(y_pred, y, group)`` (or with ``cluster``); default
            ``from_engine(["pred", "label", "group"])`` plus ``cluster_key`` when given.
        save_details: store the gathered per-image (dice, iou, group) in ``engine.state.metric_details``.
        cluster_key: batch key of numeric patient ids for the cluster bootstrap.
        kwargs: further arguments of :func:`monai_fair.metrics.compute_group_segmentation_metrics`.
    """

    def __init__(
        self,
        num_groups: int | None = None,
        include_background: bool = False,
        reduction: str | None = "worst_group_dice",
        output_transform: Callable | None = None,
        save_details: bool = False,
        cluster_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        metric_fn = GroupSegmentationMetric(
            num_groups=num_groups, include_background=include_background, reduction=reduction, **kwargs
        )
        transform = _default_transform(output_transform, cluster_key)
        super().__init__(metric_fn=metric_fn, output_transform=transform, save_details=save_details)
