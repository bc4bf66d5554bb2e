# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Ignite handler that writes the fairness report (JSON, Markdown, PNG) when an evaluation run completes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import from_engine
from monai.metrics import Cumulative
from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.metrics.cumulative import GroupClassificationMetric, GroupSegmentationMetric
from monai_fair.report.card import find_bundle_metadata, write_fairness_card
from monai_fair.report.files import write_fairness_report
from monai_fair.report.inputs import ClassificationInputs, ReportOptions, SegmentationInputs
from monai_fair.report.markdown import format_report_summary
from monai_fair.utils.distributed import is_rank_zero

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["FairnessReportHandler"]


class FairnessReportHandler:
    """Accumulate predictions per iteration and write the fairness report at ``Events.COMPLETED``.

    Attach to a MONAI evaluator (e.g. :class:`monai_fair.engines.GroupSupervisedEvaluator`, whose output carries
    the group). Each iteration ``output_transform(engine.state.output)`` gives ``(y_pred, y, group)`` or
    ``(y_pred, y, group, cluster)`` (integer patient ids: the intervals then use the cluster bootstrap):

    * classification: ``y_pred`` probabilities ``(B,)``/``(B, C)`` (after ``Activations``) and ``y`` labels; the
      handler keeps one score row, label and group per sample;
    * segmentation: ``y_pred`` binarised one-hot masks and ``y`` masks; per-image Dice and IoU are computed on the
      fly (:func:`monai_fair.metrics.compute_per_image_dice_iou`) and masks are not stored.

    At completion the buffers are gathered across DDP ranks (MONAI's ``Cumulative`` buffers, which all-gather);
    rank 0 writes ``report.json``, ``report.md`` and the PNGs with
    :func:`monai_fair.report.write_fairness_report`, the fairness card (``fairness_card.md``/``.json``,
    :func:`monai_fair.report.write_fairness_card`) and logs a short aggregated summary with ``engine.logger``.
    The report is also put in ``engine.state.fairness_report``. Buffers are reset when a run starts, so with
    periodic validation each run overwrites the report. Nothing per patient is logged, and every log line, warning
    and file shows only the reported groups (suppression with the secondary rule, see
    :mod:`monai_fair.report.building`).

    Args:
        output_dir: folder of the report.
        task: ``"classification"`` or ``"segmentation"``.
        group_names: names of the group ids (index = id).
        min_group_size: groups with fewer samples are suppressed in every output.
        output_transform: maps ``engine.state.output`` to ``(y_pred, y, group)``.
        n_bootstrap, seed, ci: bootstrap confidence intervals.
        stratified_bootstrap: resample within each group (group sizes fixed) instead of over all samples.
        threshold: binary decision threshold (classification).
        include_background: channel 0 in the per-image Dice/IoU (segmentation).
        plots: write the PNGs.
        log_summary: log the summary through ``engine.logger``.
        tolerance: largest gap that counts as negligible (the verdicts).
        alpha: significance level of the tests behind the verdicts and the detectable gaps.
        threshold_source: where ``threshold`` came from, in words (default: "default 0.5" or "user").
        attribute: name of the attribute the groups come from (titles, card).
        split: name of the evaluated split (titles, card).
        card: write the fairness card next to the report.
        metadata_file: the bundle's ``configs/metadata.json`` (model name and version of the card); default: found
            from ``output_dir`` (``<bundle>/eval`` or ``<bundle>/eval/<sub>``).
        record_in_metadata: also record the headline figures under ``fairness`` in ``metadata_file`` (opt-in).
    """

    def __init__(
        self,
        output_dir: str | Path,
        task: str,
        group_names: Sequence[str] | None,
        min_group_size: int = 10,
        output_transform: Callable = from_engine(["pred", "label", "group"]),
        n_bootstrap: int = 200,
        seed: int = 0,
        ci: float = 0.95,
        threshold: float = 0.5,
        include_background: bool = False,
        stratified_bootstrap: bool = False,
        plots: bool = True,
        log_summary: bool = True,
        tolerance: float = 0.05,
        threshold_source: str | None = None,
        attribute: str | None = None,
        split: str | None = None,
        card: bool = True,
        metadata_file: str | Path | None = None,
        record_in_metadata: bool = False,
        alpha: float = 0.05,
    ) -> None:
        if task not in ("classification", "segmentation"):
            raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}.")
        self.output_dir = Path(output_dir)
        self.task = task
        self.group_names = list(group_names) if group_names is not None else None
        self.options = ReportOptions(
            min_group_size=min_group_size,
            n_bootstrap=n_bootstrap,
            seed=seed,
            ci=ci,
            alpha=alpha,
            tolerance=tolerance,
            stratified_bootstrap=stratified_bootstrap,
            attribute=attribute,
            split=split,
        )
        self.output_transform = output_transform
        self.threshold = threshold
        self.plots = plots
        self.log_summary = log_summary
        self.threshold_source = threshold_source or ("default 0.5" if threshold == 0.5 else "user")
        self.card = card
        self.metadata_file = metadata_file
        self.record_in_metadata = record_in_metadata
        if record_in_metadata and metadata_file is None and find_bundle_metadata(self.output_dir) is None:
            raise ValueError(
                f"record_in_metadata=True: no configs/metadata.json found above {self.output_dir}; give metadata_file."
            )
        self.cluster_buffer = Cumulative()
        self.buffer: GroupClassificationMetric | GroupSegmentationMetric
        if task == "classification":
            self.buffer = GroupClassificationMetric(threshold=threshold)
        else:
            self.buffer = GroupSegmentationMetric(include_background=include_background)
        self.report: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        """Register the handler on ``engine`` (STARTED: reset; ITERATION_COMPLETED: accumulate; COMPLETED: write)."""
        if not engine.has_event_handler(self.reset, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self.reset)
        if not engine.has_event_handler(self.iteration_completed, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        if not engine.has_event_handler(self.completed, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self.completed)

    def reset(self, engine: Engine | None = None) -> None:
        self.buffer.reset()
        self.cluster_buffer.reset()

    def iteration_completed(self, engine: Engine) -> None:
        out = self.output_transform(engine.state.output)
        if len(out) not in (3, 4):
            raise ValueError("FairnessReportHandler's output_transform must return (y_pred, y, group[, cluster]).")
        y_pred, y, group = out[:3]
        self.buffer(y_pred, y, group=group)
        if len(out) == 4:
            c = out[3]
            c = torch.stack([torch.as_tensor(v).reshape(-1) for v in c]) if isinstance(c, (list, tuple)) else c
            self.cluster_buffer.extend(torch.as_tensor(c).reshape(-1, 1))

    def completed(self, engine: Engine) -> None:
        buf = self.buffer.get_buffer()  # collective under DDP: every rank calls it
        cl_buf = self.cluster_buffer.get_buffer()
        cluster = cl_buf[:, 0].cpu() if isinstance(cl_buf, torch.Tensor) and cl_buf.numel() else None
        if buf is None:
            engine.logger.warning("FairnessReportHandler: no samples were seen; no report written.")
            return
        if not is_rank_zero():
            return
        a, b, g = buf
        inputs: ClassificationInputs | SegmentationInputs
        if isinstance(self.buffer, GroupClassificationMetric):
            inputs = ClassificationInputs(
                y=b[:, 0],
                group=g[:, 0],
                group_names=self.group_names,
                y_score=a[:, 0] if a.shape[1] == 1 else a,
                threshold=self.threshold,
                threshold_source=self.threshold_source,
                cluster=cluster,
            )
        else:
            inputs = SegmentationInputs(
                dice=a[:, 0], iou=b[:, 0], group=g[:, 0], group_names=self.group_names, cluster=cluster
            )
        report = write_fairness_report(self.output_dir, inputs, self.options, plots=self.plots)
        self.report = report
        engine.state.fairness_report = report  # type: ignore[attr-defined]
        if self.card:
            meta = Path(self.metadata_file) if self.metadata_file else find_bundle_metadata(self.output_dir)
            write_fairness_card(self.output_dir, report, metadata_file=meta, record_metadata=self.record_in_metadata)
        if self.log_summary:
            engine.logger.info(format_report_summary(report))
            engine.logger.info(f"fairness report written to {self.output_dir}")
