# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""PNG plots of the fairness report and the compare report (matplotlib, Agg backend).

Every figure has a title naming the attribute, the split and the CI level, shows ``n`` per group and uses readable
names (:mod:`monai_fair.report.glossary`). When nothing can be shown (every group suppressed, a figure undefined)
the figure is a panel that says why, never an empty axis. The functions take only what the report shows (the
reported groups), so a suppressed group cannot reach a plot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_fair.report.glossary import readable_name

__all__ = [
    "ForestRow",
    "plot_forest",
    "plot_group_bars",
    "plot_group_roc",
    "plot_message",
    "plot_reliability",
    "roc_curve_points",
]

#: one row of a forest plot: (label, estimate, lower, upper, annotation on the right)
ForestRow = tuple[str, float | None, float | None, float | None, str]


def _pyplot() -> Any:
    try:  # imported when a plot is drawn (MONAI's optional_import would load every MONAI submodule first)
        import matplotlib as mpl
    except ImportError as e:
        raise ImportError("matplotlib is needed for the report plots.") from e
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no machine/tool strings in the PNG
    plt.close(fig)
    return path


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def plot_message(path: str | Path, title: str, message: str) -> Path:
    """A figure that only says why nothing is plotted (e.g. every group is suppressed)."""
    plt = _pyplot()
    import textwrap

    fig, ax = plt.subplots(figsize=(7.0, 2.6))
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    text = "\n".join(textwrap.wrap(message, 72))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


def plot_group_bars(
    rows: Sequence[tuple[str, Mapping[str, Any]]], metrics: Sequence[str], path: str | Path, title: str
) -> Path:
    """Bars of ``metrics`` per row (``overall`` first, then the reported groups) with CI error bars.

    Args:
        rows: ``(name, entry)`` pairs; ``entry`` has ``n``, the metric values and optionally ``ci``
            (``{metric: [lo, hi]}``).
        metrics: metric keys, one panel each (readable names as panel titles).
        path: PNG file.
        title: figure title (attribute, split, CI level).
    """
    plt = _pyplot()
    metrics = [m for m in metrics if any(e.get(m) is not None for _, e in rows)]
    if not rows or not metrics:
        return plot_message(path, title, "no per-group value can be shown")
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow + 0.5), squeeze=False)
    x = np.arange(len(rows))
    labels = [f"{name}\nn={int(e['n'])}" for name, e in rows]
    for ax, m in zip(axes.flat, metrics):
        vals = np.array([_num(e.get(m)) for _, e in rows])
        err = np.zeros((2, len(rows)))
        for j, (_, e) in enumerate(rows):
            ci = (e.get("ci") or {}).get(m)
            if ci and ci[0] is not None and ci[1] is not None and not np.isnan(vals[j]):
                err[:, j] = max(vals[j] - ci[0], 0.0), max(ci[1] - vals[j], 0.0)
        colors = ["0.55"] + [f"C{k % 10}" for k in range(len(rows) - 1)]
        ax.bar(x, np.nan_to_num(vals), yerr=err, capsize=3, color=colors)
        for j in np.flatnonzero(np.isnan(vals)):
            ax.text(x[j], 0.02, "n/a", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(readable_name(m), fontsize=10)
        ax.set_ylim(0, 1.05)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_forest(
    rows: Sequence[ForestRow],
    path: str | Path,
    title: str,
    xlabel: str,
    reference: float = 0.0,
    tolerance: float | None = None,
    empty_message: str = "no figure with an interval can be shown",
) -> Path:
    """Forest plot: one line per figure with its point estimate and CI, a reference line, a tolerance band.

    Args:
        rows: ``(label, estimate, lo, hi, annotation)``; rows whose estimate is ``None`` are listed as ``n/a``.
        path: PNG file.
        title: figure title.
        xlabel: x-axis label (e.g. "gap (max − min over groups)" or "difference OTHER − BASE").
        reference: x of the reference line (0 for gaps and differences).
        tolerance: draws the band ``reference ± tolerance`` (the "no disparity" region) when given.
        empty_message: the panel text when ``rows`` is empty.
    """
    plt = _pyplot()
    if not rows:
        return plot_message(path, title, empty_message)
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for yi, (_, est, lo, hi, _) in zip(y, rows):
        if est is None:
            continue
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [yi, yi], color="C0", lw=2)
        ax.plot([est], [yi], "o", color="C0", ms=5)
    ax.axvline(reference, color="0.3", lw=0.8)
    if tolerance is not None and tolerance > 0:
        ax.axvspan(reference - tolerance, reference + tolerance, color="C2", alpha=0.12, lw=0)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    for yi, r in zip(y, rows):
        ax.annotate(
            "n/a" if r[1] is None else r[4],
            xy=(1.01, yi),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            va="center",
        )
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    return _save(fig, path)


def plot_reliability(curves: Sequence[tuple[str, Mapping[str, Any]]], path: str | Path, title: str) -> Path:
    """Reliability diagrams, one panel per row (overall and each reported group).

    Args:
        curves: ``(name, data)`` where ``data`` has ``n``, and per score bin ``confidence`` (mean predicted
            probability), ``accuracy`` (observed positive rate, or share correct for top-label confidence) and
            ``count`` (bins left out are ``None``/NaN), and optionally ``ece``
            (:func:`monai_fair.metrics.compute_group_calibration`'s ``reliability`` entries).
        path: PNG file.
        title: figure title.
    """
    plt = _pyplot()
    if not curves:
        return plot_message(path, title, "no group can be shown")
    ncol = min(3, len(curves))
    nrow = math.ceil(len(curves) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.5 * nrow + 0.4), squeeze=False)
    for ax, (name, d) in zip(axes.flat, curves):
        ms = np.array([_num(v) for v in d.get("confidence", [])])
        pr = np.array([_num(v) for v in d.get("accuracy", [])])
        cnt = np.array([_num(v) for v in d.get("count", [])])
        ok = ~np.isnan(ms) & ~np.isnan(pr) & (np.nan_to_num(cnt) > 0)
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
        if ok.any():
            size = 12 + 60 * cnt[ok] / max(cnt[ok].max(), 1)
            ax.plot(ms[ok], pr[ok], color="C0", lw=1)
            ax.scatter(ms[ok], pr[ok], s=size, color="C0", zorder=3)
        else:
            ax.text(0.5, 0.5, "no bin with enough cases", ha="center", va="center", fontsize=9)
        ece = d.get("ece")
        sub = f"{name} (n={int(d['n'])})" + (f", ECE {ece:.3f}" if ece is not None else "")
        ax.set_title(sub, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean predicted probability", fontsize=8)
        ax.set_ylabel("observed rate", fontsize=8)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def roc_curve_points(score: torch.Tensor, positive: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve (FPR, TPR) at every distinct threshold, vectorised (descending-score cumulative counts)."""
    s = score.to(torch.float64).reshape(-1)
    p = positive.reshape(-1).to(torch.float64)
    order = torch.argsort(s, descending=True, stable=True)
    s, p = s[order], p[order]
    tps = torch.cumsum(p, 0)
    fps = torch.cumsum(1 - p, 0)
    last = torch.ones_like(s, dtype=torch.bool)
    if s.numel() > 1:
        last[:-1] = s[1:] != s[:-1]  # keep the last index of every tie block
    tps, fps = tps[last], fps[last]
    npos, nneg = p.sum(), (1 - p).sum()
    tpr = torch.cat([torch.zeros(1, dtype=torch.float64), tps / npos.clamp_min(1)])
    fpr = torch.cat([torch.zeros(1, dtype=torch.float64), fps / nneg.clamp_min(1)])
    return fpr.numpy(), tpr.numpy()


def plot_group_roc(
    score: torch.Tensor,
    y: torch.Tensor,
    group: torch.Tensor,
    group_ids: Sequence[int],
    group_names: Sequence[str],
    aucs: Sequence[float | None],
    path: str | Path,
    title: str = "ROC per group",
) -> Path:
    """Per-group ROC curves of the listed (reported) groups; binary task, ``score`` = positive-class probability."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    drawn = 0
    for k, (gid, name, auc) in enumerate(zip(group_ids, group_names, aucs)):
        m = group == gid
        pos = y[m] == 1
        if int(pos.sum()) == 0 or int((~pos).sum()) == 0:
            continue  # ROC undefined for a one-class group
        fpr, tpr = roc_curve_points(score[m], pos)
        label = f"{name}, n={int(m.sum())}" + (f" (AUC {auc:.3f})" if auc is not None else "")
        ax.plot(fpr, tpr, color=f"C{k % 10}", label=label)
        drawn += 1
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
    ax.set_xlabel("false-positive rate (FPR)")
    ax.set_ylabel("true-positive rate (TPR)")
    ax.set_title(title, fontsize=10)
    if drawn:
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no reported group has both classes", ha="center", va="center", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
