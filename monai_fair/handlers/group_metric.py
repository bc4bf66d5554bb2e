# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Thin Ignite handlers for the group fairness metrics (``IgniteMetricHandler`` taking ``(y_pred, y, group)``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.handlers import IgniteMetricHandler, from_engine
from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.metrics.group_classification import GroupClassificationMetric
from monai_fair.metrics.group_segmentation import GroupSegmentationMetric

reinit__is_reduced, _ = optional_import(
    "ignite.metrics.metric", IgniteInfo.OPT_IMPORT_VERSION, min_version, "reinit__is_reduced", as_type="decorator"
)

__all__ = ["GroupClassificationMetricHandler", "GroupSegmentationMetricHandler"]


class _GroupMetricHandler(IgniteMetricHandler):
    """``IgniteMetricHandler`` whose ``update`` takes ``(y_pred, y, group)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ignite >= 0.5 "unrolls" list outputs into (y_pred, y) pairs; a group metric takes three items per batch.
        self._skip_unrolling = True

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        """
        Args:
            output: ``(y_pred, y, group)`` from ``output_transform``.

        Raises:
            ValueError: when ``output`` does not have three items.
        """
        if len(output) != 3:
            raise ValueError(
                f"{type(self).__name__} needs output_transform to return (y_pred, y, group), got {len(output)} items; "
                "use output_transform=from_engine(['pred', 'label', 'group'])."
            )
        y_pred, y, group = output
        self.metric_fn(y_pred, y, group=group)

    def compute(self) -> Any:
        """The aggregated metric: a float for a scalar ``reduction``, else the result dict."""
        result = self.metric_fn.aggregate()
        self._is_reduced = True
        if self.save_details:
            if self._engine is None or self._name is None:
                raise RuntimeError("please call the attach() function to connect expected engine first.")
            self._engine.state.metric_details[self._name] = self.metric_fn.get_buffer()  # type: ignore
        if isinstance(result, torch.Tensor):
            return float(result.item())
        return result


class GroupClassificationMetricHandler(_GroupMetricHandler):
    """Ignite handler of :class:`monai_fair.metrics.GroupClassificationMetric`.

    ``y_pred`` must be probabilities (``Activations`` in postprocessing) or one-hot; ``y`` class ids or one-hot.

    Args:
        num_groups: number of groups (default: inferred).
        threshold: binary decision threshold.
        reduction: the scalar to report (e.g. ``"worst_group_auc"``, ``"es_auc"``, ``"auc_gap"``) so it can serve
            as ``key_metric``; ``None`` gives the whole result dict.
        output_transform: returns ``(y_pred, y, group)``; default ``from_engine(["pred", "label", "group"])``.
        save_details: store the gathered per-sample (score, label, group) buffers in
            ``engine.state.metric_details`` (default False: these are per-patient data).
        kwargs: further arguments of :func:`monai_fair.metrics.compute_group_classification_metrics`.
    """

    def __init__(
        self,
        num_groups: int | None = None,
        threshold: float = 0.5,
        reduction: str | None = "worst_group_auc",
        output_transform: Callable = from_engine(["pred", "label", "group"]),
        save_details: bool = False,
        **kwargs: Any,
    ) -> None:
        metric_fn = GroupClassificationMetric(num_groups=num_groups, threshold=threshold, reduction=reduction, **kwargs)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class GroupSegmentationMetricHandler(_GroupMetricHandler):
    """Ignite handler of :class:`monai_fair.metrics.GroupSegmentationMetric` (per-image Dice/IoU per group).

    Args:
        num_groups: number of groups (default: inferred).
        include_background: include channel 0 in the per-image Dice/IoU.
        reduction: the scalar to report (e.g. ``"worst_group_dice"``, ``"es_dice"``, ``"dice_gap"``, ``"ser"``);
            ``None`` gives the whole result dict.
        output_transform: returns ``(y_pred, y, group)``; default ``from_engine(["pred", "label", "group"])``.
        save_details: store the gathered per-image (dice, iou, group) in ``engine.state.metric_details``.
        kwargs: further arguments of :func:`monai_fair.metrics.compute_group_segmentation_metrics`.
    """

    def __init__(
        self,
        num_groups: int | None = None,
        include_background: bool = False,
        reduction: str | None = "worst_group_dice",
        output_transform: Callable = from_engine(["pred", "label", "group"]),
        save_details: bool = False,
        **kwargs: Any,
    ) -> None:
        metric_fn = GroupSegmentationMetric(
            num_groups=num_groups, include_background=include_background, reduction=reduction, **kwargs
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
