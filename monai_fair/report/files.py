# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Writing a fairness report: ``report.json``, ``report.md`` and the PNG plots (:func:`write_fairness_report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from monai_fair.metrics.utils import to_flat_tensor
from monai_fair.report.building import build_fairness_report
from monai_fair.report.glossary import readable_name
from monai_fair.report.inputs import ClassificationInputs, ReportInputs, ReportOptions
from monai_fair.report.markdown import format_report_markdown, report_title
from monai_fair.report.plots import (
    plot_forest,
    plot_group_bars,
    plot_group_roc,
    plot_message,
    plot_reliability,
)
from monai_fair.utils.io import atomic_write_text

__all__ = ["write_fairness_report"]


def write_fairness_report(
    out_dir: str | Path, inputs: ReportInputs, options: ReportOptions | None = None, *, plots: bool = True
) -> dict[str, Any]:
    """Compute the group fairness report and write ``report.json``, ``report.md`` and PNG plots to ``out_dir``.

    Args:
        out_dir: output folder (created).
        inputs: :class:`~monai_fair.report.inputs.ClassificationInputs` or
            :class:`~monai_fair.report.inputs.SegmentationInputs` (see :func:`build_fairness_report`).
        options: statistics and context (:class:`~monai_fair.report.inputs.ReportOptions`).
        plots: write the PNGs (per-group bars, gap forest plot, ROC per group and reliability where defined).

    Returns:
        the report dictionary (as in ``report.json``; ``files`` lists what was written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_fairness_report(inputs, options)
    files = ["report.json", "report.md"]
    if plots:
        files += _write_plots(out, report, inputs)
    report["files"] = files
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out / "report.md", format_report_markdown(report))
    return report


_NO_GROUP = (
    "No group can be shown: every group has fewer cases than min_group_size, or is hidden so that it cannot be "
    "derived from overall minus the reported groups (secondary suppression)."
)


def _write_plots(out: Path, report: dict[str, Any], inputs: ReportInputs) -> list[str]:
    files = []
    group, group_names = inputs.group, inputs.group_names
    rows = [("overall", report["overall"])] + list(report["groups"].items())
    if not report["groups"]:
        plot_message(out / "group_metrics.png", report_title(report, "Per-group metrics"), _NO_GROUP)
    else:
        plot_group_bars(rows, report["metrics"], out / "group_metrics.png", report_title(report, "Per-group metrics"))
    files.append("group_metrics.png")
    fr = []
    for m, e in report["figures"].items():
        if "verdict" not in e or e["value"] is None:
            continue
        lo, hi = (e["ci"] or [None, None])[:2]
        note = e["verdict"] or ""
        fr.append((readable_name(m), e["value"], lo, hi, note))
    why = report["notes"][-1] if report["notes"] and len(report["groups"]) < 2 else "no gap figure is defined"
    plot_forest(
        fr,
        out / "gaps_forest.png",
        report_title(report, "Fairness gaps")
        + ("\n" + ", ".join(f"{n} (n={e['n']})" for n, e in report["groups"].items()) if report["groups"] else ""),
        f"gap (max − min over groups); band: ± tolerance {report['tolerance']:g}",
        tolerance=report["tolerance"],
        empty_message=why,
    )
    files.append("gaps_forest.png")
    if isinstance(inputs, ClassificationInputs) and inputs.y_score is not None:
        y = inputs.y
        s = to_flat_tensor(inputs.y_score, "y_score", torch.float64)
        if (s.ndim == 1 or (s.ndim == 2 and s.shape[1] <= 2)) and not report["groups"]:
            plot_message(out / "roc_curves.png", report_title(report, "ROC per group"), _NO_GROUP)
            files.append("roc_curves.png")
        elif s.ndim == 1 or (s.ndim == 2 and s.shape[1] <= 2):
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
                title=report_title(report, "ROC per group"),
            )
            files.append("roc_curves.png")
    rel = report.get("reliability")
    if rel:
        ov = report["overall"]
        curves = [("overall", {**rel["overall"], "n": ov["n"], "ece": ov.get("ece")})]
        curves += [
            (n, {**rel["groups"][n], "n": e["n"], "ece": e.get("ece")})
            for n, e in report["groups"].items()
            if n in rel["groups"]
        ]
        plot_reliability(curves, out / "reliability.png", report_title(report, "Reliability (calibration)"))
        files.append("reliability.png")
    return files
