# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The typed report API: what a fairness report is computed from (:class:`ClassificationInputs`,
:class:`SegmentationInputs`) and how (:class:`ReportOptions`).

Both prediction-table readers return these inputs (:func:`monai_fair.report.predictions.read_prediction_table`,
:func:`monai_fair.report.segmentation_masks.read_segmentation_table`), the report handler builds them from its
buffers, and :func:`monai_fair.report.build_fairness_report` / :func:`monai_fair.report.write_fairness_report`
dispatch on their type. The statistics options live in one :class:`ReportOptions` that every caller (the
``report`` command, the report handler, the trial) passes on whole, so a new option reaches all of them at once.
Imports only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = ["ClassificationInputs", "SegmentationInputs", "ReportInputs", "ReportOptions"]


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """Statistics and context of a fairness report (one value object for every caller).

    Attributes:
        min_group_size: groups with fewer cases are suppressed everywhere (primary and secondary suppression).
        n_bootstrap: bootstrap replicates of the intervals (0: no intervals and no verdicts).
        seed: seed of the bootstrap.
        ci: confidence level of the intervals.
        alpha: significance level of the tests of equal group values behind the verdicts and of the smallest
            detectable gaps.
        tolerance: largest gap that counts as negligible (verdicts), in the figure's units.
        stratified_bootstrap: resample within each group (group sizes fixed) instead of over all cases; with a
            cluster (patient) column the cluster bootstrap is used instead.
        attribute: name of the attribute the groups come from (titles).
        split: name of the evaluated split (titles).
    """

    min_group_size: int = 10
    n_bootstrap: int = 200
    seed: int = 0
    ci: float = 0.95
    alpha: float = 0.05
    tolerance: float = 0.05
    stratified_bootstrap: bool = False
    attribute: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}.")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}.")
        if not 0 < self.ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {self.ci}.")
        if self.n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be >= 0, got {self.n_bootstrap}.")

    @classmethod
    def from_mapping(cls, values: Any) -> ReportOptions:
        """Options from a mapping (or an ``argparse`` namespace) holding some of the fields; others are ignored."""
        get = values.get if hasattr(values, "get") else lambda k, d=None: getattr(values, k, d)
        sentinel = object()
        kw = {f.name: get(f.name, sentinel) for f in fields(cls)}
        return cls(**{k: v for k, v in kw.items() if v is not sentinel})


@dataclass(kw_only=True)
class ClassificationInputs:
    """Per-case inputs of a classification fairness report.

    Attributes:
        y: ``(N,)`` labels (or ``(N, C)`` one-hot), or ``None`` where a table has no label column.
        group: ``(N,)`` integer group ids; ``group_names[k]`` names group ``k``.
        group_names: names of the groups (index = id), used as keys of ``groups`` in the report.
        y_score: ``(N,)`` positive-class or ``(N, C)`` class probabilities (gives AUC, ROC and calibration).
        y_pred: ``(N,)`` predicted labels given as such (e.g. a predicted-label column); ``None``: the decisions
            are ``y_score`` thresholded at ``threshold`` (binary) or its argmax.
        threshold: binary decision threshold on ``y_score`` (``None``: the default 0.5).
        threshold_source: where the decisions came from, in words ("default 0.5", "fitted on validation", ...).
        cluster: ``(N,)`` patient (cluster) ids: the bootstrap resamples patients with all their cases.
        n_omitted: cases left out before the report (missing values), stated in the report.
        class_names: names of the classes (recorded).
    """

    task: ClassVar[str] = "classification"

    y: Any
    group: Any
    group_names: Sequence[str] | None = None
    y_score: Any = None
    y_pred: Any = None
    threshold: float | None = None
    threshold_source: str | None = None
    cluster: Any = None
    n_omitted: int = 0
    class_names: Sequence[str] | None = None

    @property
    def decision_threshold(self) -> float:
        """The threshold the report uses (0.5 when none is given)."""
        return 0.5 if self.threshold is None or math.isnan(self.threshold) else float(self.threshold)


@dataclass(kw_only=True)
class SegmentationInputs:
    """Per-image inputs of a segmentation fairness report.

    Attributes:
        dice: ``(N,)`` per-image Dice.
        group: ``(N,)`` integer group ids; ``group_names[k]`` names group ``k``.
        group_names: names of the groups (index = id).
        iou: ``(N,)`` per-image IoU (optional).
        cluster: ``(N,)`` patient (cluster) ids.
        n_omitted: images left out before the report (missing values), stated in the report.
    """

    task: ClassVar[str] = "segmentation"

    dice: Any
    group: Any
    group_names: Sequence[str] | None = None
    iou: Any = None
    cluster: Any = None
    n_omitted: int = 0


#: what :func:`monai_fair.report.build_fairness_report` accepts
ReportInputs = ClassificationInputs | SegmentationInputs
