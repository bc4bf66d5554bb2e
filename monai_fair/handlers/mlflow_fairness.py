# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Log an evaluation's fairness report and card to the MLflow run of ``--tracking mlflow``, and end that run.

``python -m monai.bundle run ... --tracking mlflow`` adds MONAI's ``MLFlowHandler`` to ``train#trainer`` (it ends
its run when training completes) and to ``validate#evaluator`` (it never ends its run: a stand-alone evaluation stays
RUNNING in MLflow). :class:`FairnessMLflowLogger`, listed after the ``FairnessReportHandler`` in an evaluation's
``validate#handlers``, finds that ``MLFlowHandler`` on the same engine when the evaluation completes and

* logs the report files (``report.json``, ``report.md``, the PNG plots) and the fairness card
  (``fairness_card.md``/``.json``) as artifacts under ``fairness_report/``;
* logs the card's headline figures as metrics, named ``<split>_fairness_<figure>`` (e.g. ``test_fairness_auc_gap``;
  the engine's own metrics such as ``test_auc_gap`` keep their names), with ``..._ci_lower``/``..._ci_upper`` when
  the figure has an interval, and each verdict as a tag ``fairness.verdict.<figure>``;
* ends the run with status FINISHED (``close_run=True``, for a stand-alone evaluation).

The report and the card hold only reported groups (``min_group_size`` and secondary suppression are applied by
the report), and only their aggregate figures are logged, so nothing suppressed reaches MLflow through this handler.
Without ``--tracking`` there is no ``MLFlowHandler`` on the engine and the handler does nothing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["FairnessMLflowLogger", "fairness_headline_metrics", "find_mlflow_handlers", "report_artifacts"]

logger = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "report.md", "fairness_card.json", "fairness_card.md")


def find_mlflow_handlers(engine: Engine) -> list[Any]:
    """The MONAI ``MLFlowHandler`` objects attached to ``engine`` (in attachment order).

    Ignite keeps an engine's handlers per event; an ``MLFlowHandler`` registers its bound ``start`` method on
    ``Events.STARTED`` (``MLFlowHandler.attach``), which is how it is found here.
    """
    from monai.handlers import MLFlowHandler

    found: list[Any] = []
    for entries in getattr(engine, "_event_handlers", {}).values():
        for handler, _, _ in entries:
            owner = getattr(getattr(handler, "__wrapped__", handler), "__self__", None)
            if isinstance(owner, MLFlowHandler) and all(owner is not f for f in found):
                found.append(owner)
    return found


def report_artifacts(report_dir: str | Path) -> list[Path]:
    """The files of a fairness report folder that are logged: report and card (JSON, Markdown) and the PNG plots.

    Only these names are taken (never the whole folder, which may hold MLflow's own database or other runs' files).
    """
    d = Path(report_dir)
    files = [d / name for name in REPORT_FILES if (d / name).is_file()]
    return files + sorted(p for p in d.glob("*.png") if p.is_file())


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def fairness_headline_metrics(card: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and tags of a fairness card (``fairness_card.json``): its headline figures, intervals and verdicts.

    Returns ``({prefix + figure: value, prefix + figure + "_ci_lower"/"_ci_upper": bound, prefix + "n": n,
    prefix + "groups_reported": count}, {"fairness.verdict." + figure: verdict})``. Figures that are undefined
    (``null``: e.g. a gap with fewer than two reported groups) are left out rather than logged as NaN.
    """
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for key, entry in (card.get("headline") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        value = _number(entry.get("value"))
        if value is None:
            continue
        metrics[prefix + key] = value
        ci = entry.get("ci")
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_number(c) is not None for c in ci):
            metrics[prefix + key + "_ci_lower"], metrics[prefix + key + "_ci_upper"] = float(ci[0]), float(ci[1])
        if entry.get("verdict"):
            tags[f"fairness.verdict.{key}"] = str(entry["verdict"])
    n = _number((card.get("data") or {}).get("n"))
    if n is not None:
        metrics[prefix + "n"] = n
    if isinstance(card.get("groups"), Mapping):
        metrics[prefix + "groups_reported"] = float(len(card["groups"]))
    return metrics, tags


class FairnessMLflowLogger:
    """Log the fairness report and card of an evaluation to its MLflow run (see the module docstring).

    Args:
        report_dir: the folder the ``FairnessReportHandler`` writes to (its ``output_dir``).
        close_run: end the MLflow run (status FINISHED) after logging. ``True`` for a stand-alone evaluation
            (``evaluate.json``); ``False`` when the evaluator runs inside training, whose trainer ends the run.
        artifact_path: folder of the artifacts inside the run.
        metric_prefix: prefix of the logged figures; ``None``: ``"<split>_fairness_"`` with the report's split
            (``test_fairness_auc_gap``), or ``"fairness_"`` when the report names no split.

    Example (an evaluation config, after the report handler)::

        {"_target_": "monai_fair.handlers.FairnessMLflowLogger", "report_dir": "@output_dir"}
    """

    def __init__(
        self,
        report_dir: str | Path,
        close_run: bool = True,
        artifact_path: str = "fairness_report",
        metric_prefix: str | None = None,
    ) -> None:
        self.report_dir = Path(report_dir)
        self.close_run = close_run
        self.artifact_path = artifact_path
        self.metric_prefix = metric_prefix

    def attach(self, engine: Engine) -> None:
        """Run :meth:`__call__` when ``engine`` completes (list this handler after the report handler)."""
        if not engine.has_event_handler(self, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self)

    def _load(self, name: str) -> dict[str, Any] | None:
        f = self.report_dir / name
        if not f.is_file():
            return None
        with open(f) as fp:
            return json.load(fp)

    def __call__(self, engine: Engine) -> None:
        """Log the report files and headline figures to the engine's MLflow run, then end it (``close_run``)."""
        tracked = [h for h in find_mlflow_handlers(engine) if h.cur_run is not None]
        if not tracked:
            return
        tracker = tracked[0]
        run_id = tracker.cur_run.info.run_id
        files = report_artifacts(self.report_dir)
        if not files:
            logger.warning(f"no fairness report in {self.report_dir}: nothing logged to MLflow run {run_id}")
        for f in files:
            tracker.client.log_artifact(run_id, str(f), self.artifact_path)
        card = self._load("fairness_card.json")
        report = self._load("report.json") or {}
        prefix = self.metric_prefix
        if prefix is None:
            prefix = f"{report['split']}_fairness_" if report.get("split") else "fairness_"
        metrics, tags = fairness_headline_metrics(card or {}, prefix)
        if metrics or tags:
            from mlflow.entities import Metric, RunTag

            step = int(tracker.global_epoch_transform(engine.state.epoch))
            stamp = int(time.time() * 1000)
            tracker.client.log_batch(
                run_id,
                metrics=[Metric(k, v, stamp, step) for k, v in metrics.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
        logger.info(f"fairness report logged to MLflow run {run_id}: {len(files)} files, {len(metrics)} figures")
        if self.close_run:
            tracker.close()
