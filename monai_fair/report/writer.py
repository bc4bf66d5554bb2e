# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness report writer: ``report.json``, ``report.md`` and PNG plots from predictions, labels and groups.

Small groups (``n < min_group_size``) are suppressed in every output: they are neither listed nor plotted, they
are left out of gaps, worst-group values and equity-scaled metrics, and warnings that name them are not passed
on; only their number is reported (``suppressed_groups``). Their samples still count in ``overall``. The report
holds aggregates only; no per-patient value is written or logged.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

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
from monai_fair.metrics.utils import FairnessMetricWarning, group_label, to_flat_tensor
from monai_fair.report.plots import plot_group_bars, plot_group_roc
from monai_fair.utils.serialization import to_json_safe

__all__ = ["write_fairness_report", "build_fairness_report", "format_report_markdown", "format_report_summary"]

#: fairness keys shown in the Markdown/summary (the JSON holds all)
_CLS_FAIRNESS_MAIN = (
    "accuracy_gap",
    "auc_gap",
    "worst_group_accuracy",
    "worst_group_auc",
    "es_accuracy",
    "es_auc",
    "eopp0",
    "eopp1",
    "eodds",
    "demographic_parity",
)
_SEG_FAIRNESS_MAIN = ("dice_gap", "iou_gap", "worst_group_dice", "es_dice", "es_iou", "ser")


def build_fairness_report(
    task: str,
    y: Any,
    group: Any,
    group_names: Sequence[str] | None,
    *,
    y_score: Any = None,
    y_pred: Any = None,
    dice: Any = None,
    iou: Any = None,
    min_group_size: int = 10,
    n_bootstrap: int = 200,
    seed: int = 0,
    ci: float = 0.95,
    threshold: float = 0.5,
    stratified_bootstrap: bool = False,
) -> dict[str, Any]:
    """The report dictionary written by :func:`write_fairness_report` (nothing is written)."""
    if task not in ("classification", "segmentation"):
        raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}.")
    g = to_flat_tensor(group, "group").reshape(-1).long()
    num_groups = max(len(group_names) if group_names is not None else 0, int(g.max()) + 1 if g.numel() else 1)
    names = list(group_names) if group_names is not None else []
    names += [str(k) for k in range(len(names), num_groups)]
    if len(set(names)) != len(names):
        raise ValueError(f"group_names must be unique, got {names}.")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FairnessMetricWarning)
        if task == "classification":
            res = compute_group_classification_metrics(
                y_score,
                y,
                g,
                num_groups,
                threshold,
                y_pred=y_pred,
                group_names=names,
                min_group_size=min_group_size,
                n_bootstrap=n_bootstrap,
                ci=ci,
                seed=seed,
                stratified_bootstrap=stratified_bootstrap,
            )
            group_metrics, fairness_names = CLASSIFICATION_GROUP_METRICS, CLASSIFICATION_FAIRNESS_METRICS
        else:
            if dice is None:
                raise ValueError("task='segmentation' needs per-image `dice` (and optionally `iou`).")
            res = compute_group_segmentation_metrics(
                dice,
                iou,
                g,
                num_groups,
                group_names=names,
                min_group_size=min_group_size,
                n_bootstrap=n_bootstrap,
                ci=ci,
                seed=seed,
                stratified_bootstrap=stratified_bootstrap,
            )
            group_metrics, fairness_names = SEGMENTATION_GROUP_METRICS, SEGMENTATION_FAIRNESS_METRICS
    suppressed = [k for k in range(num_groups) if res["groups"][k]["n"] < min_group_size]
    hidden = [group_label(k, names) for k in suppressed]
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, FairnessMetricWarning) and any(h in msg for h in hidden):
            continue  # never name a suppressed group
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    report: dict[str, Any] = {
        "task": task,
        "min_group_size": int(min_group_size),
        "n_bootstrap": int(n_bootstrap),
        "ci_level": float(ci),
        "seed": int(seed),
        "stratified_bootstrap": bool(stratified_bootstrap),
        "suppressed_groups": len(suppressed),
        "overall": res["overall"],
        "groups": {names[k]: res["groups"][k] for k in range(num_groups) if k not in suppressed},
        "fairness": {**{m: res["fairness"][m] for m in fairness_names}, "suppressed_groups": len(suppressed)},
    }
    if "fairness_ci" in res:
        report["fairness_ci"] = res["fairness_ci"]
    report["metrics"] = [m for m in group_metrics if m in res["overall"]]
    return to_json_safe(report)


def write_fairness_report(
    out_dir: str | Path,
    task: str,
    y: Any,
    group: Any,
    group_names: Sequence[str] | None,
    *,
    y_score: Any = None,
    y_pred: Any = None,
    dice: Any = None,
    iou: Any = None,
    min_group_size: int = 10,
    n_bootstrap: int = 200,
    seed: int = 0,
    ci: float = 0.95,
    threshold: float = 0.5,
    stratified_bootstrap: bool = False,
    plots: bool = True,
) -> dict[str, Any]:
    """Compute the group fairness report and write ``report.json``, ``report.md`` and PNG plots to ``out_dir``.

    Args:
        out_dir: output folder (created).
        task: ``"classification"`` or ``"segmentation"``.
        y: ``(N,)`` labels (classification; for segmentation only its length is used and it may be ``None``).
        group: ``(N,)`` integer group ids; ``group_names[k]`` names group ``k``.
        group_names: names of the groups (index = id), used as keys of ``groups`` in the report.
        y_score: ``(N,)`` positive-class or ``(N, C)`` class probabilities (classification; gives AUC and ROC).
        y_pred: ``(N,)`` predicted labels (classification; optional when ``y_score`` is given).
        dice, iou: ``(N,)`` per-image scores (segmentation).
        min_group_size: groups with fewer samples are suppressed everywhere (see the module docstring).
        n_bootstrap, seed, ci: seeded percentile bootstrap CIs of per-group metrics and fairness metrics.
        stratified_bootstrap: resample within each group (group sizes fixed) instead of over all samples.
        threshold: binary decision threshold on ``y_score``.
        plots: write the PNGs.

    Returns:
        the report dictionary (as in ``report.json``; ``files`` lists what was written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if task == "segmentation" and y is None:
        y = torch.zeros(to_flat_tensor(group, "group").numel())
    report = build_fairness_report(
        task,
        y,
        group,
        group_names,
        y_score=y_score,
        y_pred=y_pred,
        dice=dice,
        iou=iou,
        min_group_size=min_group_size,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        threshold=threshold,
        stratified_bootstrap=stratified_bootstrap,
    )
    files = ["report.json", "report.md"]
    if plots:
        plot_group_bars(report, report["metrics"], out / "group_metrics.png")
        files.append("group_metrics.png")
        if task == "classification" and y_score is not None:
            s = to_flat_tensor(y_score, "y_score", torch.float64)
            if s.ndim == 1 or (s.ndim == 2 and s.shape[1] <= 2):
                s = s.reshape(s.shape[0], -1)[:, -1]
                g = to_flat_tensor(group, "group").reshape(-1).long()
                yy = to_flat_tensor(y, "y")
                yy = (yy.argmax(1) if yy.ndim == 2 and yy.shape[1] > 1 else yy.reshape(-1)).long()
                gnames = list(report["groups"].keys())
                all_names = list(group_names) if group_names is not None else []
                ids = [all_names.index(n) if n in all_names else int(n) for n in gnames]
                keep = ~torch.isnan(s)
                plot_group_roc(
                    s[keep],
                    yy[keep],
                    g[keep],
                    ids,
                    gnames,
                    [report["groups"][n]["auc"] for n in gnames],
                    out / "roc_curves.png",
                )
                files.append("roc_curves.png")
    report["files"] = files
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(format_report_markdown(report))
    return report


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _fmt_ci(entry: dict[str, Any], m: str) -> str:
    s = _fmt(entry.get(m))
    ci = (entry.get("ci") or {}).get(m)
    if ci is not None and entry.get(m) is not None and ci[0] is not None:
        s += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return s


def format_report_markdown(report: dict[str, Any]) -> str:
    """Markdown tables (per-group metrics with CIs, fairness metrics) of a report dictionary."""
    metrics = report.get("metrics") or [m for m in report["overall"] if m not in ("n", "ci")]
    lines = [f"# Fairness report ({report['task']})", ""]
    if report.get("n_bootstrap"):
        lines.append(
            f"Values with {int(round(100 * report['ci_level']))}% bootstrap CIs ({report['n_bootstrap']} replicates, "
            f"{'stratified by group, ' if report.get('stratified_bootstrap') else ''}seed {report['seed']})."
        )
    lines.append(
        f"Groups with fewer than {report['min_group_size']} samples are suppressed: {report['suppressed_groups']}."
    )
    lines += ["", "| group | n | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 2)]
    for name, entry in [("overall", report["overall"]), *report["groups"].items()]:
        lines.append(f"| {name} | {entry['n']} | " + " | ".join(_fmt_ci(entry, m) for m in metrics) + " |")
    lines += ["", "| fairness metric | value | CI |", "|---|---|---|"]
    fci = report.get("fairness_ci") or {}
    for m, v in report["fairness"].items():
        c = fci.get(m)
        lines.append(f"| {m} | {_fmt(v)} | " + (f"[{_fmt(c[0])}, {_fmt(c[1])}]" if c else "") + " |")
    return "\n".join(lines) + "\n"


def format_report_summary(report: dict[str, Any]) -> str:
    """A few printable lines: overall performance and the main fairness metrics (aggregates only)."""
    task = report["task"]
    main = _CLS_FAIRNESS_MAIN if task == "classification" else _SEG_FAIRNESS_MAIN
    ov = report["overall"]
    keys = ("accuracy", "auc") if task == "classification" else ("dice", "iou")
    first = f"fairness report ({task}): n={ov['n']}, " + ", ".join(f"{k}={_fmt(ov.get(k))}" for k in keys)
    first += f", {len(report['groups'])} groups reported, {report['suppressed_groups']} suppressed"
    second = "  " + ", ".join(f"{m}={_fmt(report['fairness'].get(m))}" for m in main)
    return first + "\n" + second
