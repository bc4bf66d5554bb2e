# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""PNG plots of the fairness report (matplotlib, Agg backend): per-group bars with CIs and per-group ROC curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import optional_import

__all__ = ["plot_group_bars", "plot_group_roc", "roc_curve_points"]


def _pyplot() -> Any:
    mpl, has_mpl = optional_import("matplotlib")
    if not has_mpl:
        raise ImportError("matplotlib is needed for the fairness report plots.")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_group_bars(report: dict[str, Any], metrics: Sequence[str], path: str | Path) -> Path:
    """Bar chart of ``metrics`` per reported group (and overall), with bootstrap CI error bars when present."""
    plt = _pyplot()
    names = list(report["groups"].keys())
    rows = [("overall", report["overall"])] + [(n, report["groups"][n]) for n in names]
    metrics = [m for m in metrics if m in report["overall"]]
    ncol = min(3, max(len(metrics), 1))
    nrow = max(1, math.ceil(len(metrics) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    x = np.arange(len(rows))
    for ax, m in zip(axes.flat, metrics):
        vals = np.array([r.get(m, np.nan) if r.get(m) is not None else np.nan for _, r in rows], dtype=float)
        err = np.zeros((2, len(rows)))
        for j, (_, r) in enumerate(rows):
            ci = (r.get("ci") or {}).get(m)
            if ci is not None and ci[0] is not None and ci[1] is not None and not np.isnan(vals[j]):
                err[0, j] = max(vals[j] - ci[0], 0.0)
                err[1, j] = max(ci[1] - vals[j], 0.0)
        colors = ["0.55"] + [f"C{k % 10}" for k in range(len(rows) - 1)]
        ax.bar(x, np.nan_to_num(vals), yerr=err, capsize=3, color=colors)
        ax.set_xticks(x)
        ax.set_xticklabels([str(n) for n, _ in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(m)
        ax.set_ylim(0, 1.05)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
) -> Path:
    """Per-group ROC curves (binary task; ``score`` is the positive-class probability)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for k, (gid, name, auc) in enumerate(zip(group_ids, group_names, aucs)):
        m = group == gid
        pos = y[m] == 1
        if int(pos.sum()) == 0 or int((~pos).sum()) == 0:
            continue  # ROC undefined for a one-class group
        fpr, tpr = roc_curve_points(score[m], pos)
        label = f"{name} (AUC {auc:.3f})" if auc is not None else str(name)
        ax.plot(fpr, tpr, color=f"C{k % 10}", label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC per group")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
