# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The neural-collapse trajectory: what is written (after suppression) and where (JSON, TensorBoard, PNG plots).

:func:`summarise_evaluation` turns one :class:`~monai_fair.methods.neural_collapse.NeuralCollapseEvaluation` into
the row that outputs may show: the overall NC metrics and, per group **only for the groups with at least
``min_group_size`` samples after secondary suppression** (:func:`monai_fair.metrics.suppress_groups`: with two
groups and one too small, only ``overall`` remains), the NC metrics, the per-class counts and (optionally) F1 and
accuracy. A suppressed group is never named: only the number of suppressed groups is written.

:class:`NeuralCollapseTrajectoryWriter` keeps the rows of every evaluation and writes, under ``output_dir``:

* ``nc_trajectory.json``: every evaluation (epoch, loader, overall / per-group metrics, counts, F1), rewritten
  atomically after each evaluation (NaN written as ``null``);
* TensorBoard scalars ``nc/<loader>/<metric>/<group>`` in ``output_dir/tensorboard`` (``SummaryWriter``);
* PNG plots of every metric per group (and overall) across epochs: ``plots/<loader>_all_metrics.png``,
  ``plots/<loader>_summary.png`` and, optionally, ``plots/<loader>_<metric>.png``; each with a title naming the
  split and the suppression rule, and the legend giving each group's n.

Its ``state_dict`` / ``load_state_dict`` let a resumed run continue the same trajectory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.utils import optional_import

from monai_fair.methods.neural_collapse.collection import NeuralCollapseEvaluation
from monai_fair.methods.neural_collapse.metrics import NC_METRIC_NAMES
from monai_fair.metrics import compute_group_classification_metrics, suppress_groups
from monai_fair.utils.io import atomic_write_json
from monai_fair.utils.serialization import to_builtin, to_json_safe

SummaryWriter, _has_tb = optional_import("torch.utils.tensorboard", name="SummaryWriter")

__all__ = ["TRAJECTORY_FILE", "NC_METRIC_LABELS", "summarise_evaluation", "NeuralCollapseTrajectoryWriter"]

TRAJECTORY_FILE = "nc_trajectory.json"
#: readable names of the metrics in plots
NC_METRIC_LABELS = {
    "nc1": "NC1: within-class variability Tr(Sw Sb+)/C",
    "nc2_equinorm_means": "NC2 equinorm of class means (CoV)",
    "nc2_equinorm_weights": "NC2 equinorm of classifier rows (CoV)",
    "nc2_equiangular_means": "NC2 equiangularity of class means",
    "nc2_equiangular_weights": "NC2 equiangularity of classifier rows",
    "nc2_maxangle_means": "NC2 max-angle of class means",
    "nc2_maxangle_weights": "NC2 max-angle of classifier rows",
    "nc2_etf_means": "NC2 distance of class means to a simplex ETF",
    "nc2_etf_weights": "NC2 distance of classifier rows to a simplex ETF",
    "nc3_self_duality": "NC3 self-duality ||W/|W| - M/|M|||^2",
    "nc3_etf": "NC3 distance of W M to a simplex ETF",
    "nc4_agreement": "NC4 agreement with nearest class centre",
    "nc4_mismatch": "NC4 mismatch with nearest class centre",
    "f1": "F1 score",
    "accuracy": "Accuracy",
}
SUMMARY_METRICS = ("nc1", "nc2_etf_means", "nc2_equinorm_means", "nc3_self_duality", "nc4_agreement", "f1")
# C = 2: the NC2 means metrics depend on the class counts only (see monai_fair.methods.neural_collapse.metrics)
SUMMARY_METRICS_BINARY = ("nc1", "nc2_etf_weights", "nc2_equinorm_weights", "nc3_self_duality", "nc4_agreement", "f1")


def summarise_evaluation(
    evaluation: NeuralCollapseEvaluation,
    group_names: Sequence[str],
    min_group_size: int = 1,
    compute_f1: bool = True,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The output row of one evaluation, with only the groups that survive (secondary) suppression.

    Args:
        evaluation: :func:`~monai_fair.methods.neural_collapse.collect_neural_collapse`'s result.
        group_names: names of the groups (index = id).
        min_group_size: primary-suppression threshold ``k`` (``<= 1``: nothing suppressed).
        compute_f1: add overall and per-group ``f1`` and ``accuracy`` (from this rank's predictions).
        options: extra entries for the row's ``options``.

    Returns:
        ``{"overall": {...}, "groups": {name: {...}}, "counts": {name: [n per class]}, "suppressed_groups": int,
        "options": {...}}``.
    """
    res = evaluation.metrics
    n_g = torch.tensor([row["n"] for _, row in sorted(res["groups"].items())])
    shown = suppress_groups(n_g, min_group_size)
    keep = [g for g in range(n_g.numel()) if bool(shown[g]) and int(n_g[g]) > 0]
    out: dict[str, Any] = {
        "overall": dict(res["overall"]),
        "groups": {group_names[g]: dict(res["groups"][g]) for g in keep},
        "counts": {group_names[g]: list(res["counts"][g]) for g in keep},
        "suppressed_groups": int(((n_g > 0) & ~shown).sum()),
        "options": dict(res["options"]) | {"min_group_size": int(min_group_size)} | dict(options or {}),
    }
    if compute_f1 and evaluation.labels.numel():
        scores = evaluation.scores
        y_score = scores[:, 1] if scores.shape[1] == 2 else scores
        cls = compute_group_classification_metrics(
            y_score.numpy(),
            evaluation.labels.numpy(),
            evaluation.groups.numpy(),
            num_groups=len(group_names),
            min_group_size=min_group_size,
        )
        for key in ("f1", "accuracy"):
            out["overall"][key] = float(cls["overall"][key])
            for g in keep:
                out["groups"][group_names[g]][key] = float(cls["groups"][g][key])
    return out


class NeuralCollapseTrajectoryWriter:
    """Record the summarised NC evaluations of a run and write them as JSON, TensorBoard scalars and plots.

    Args:
        output_dir: folder of ``nc_trajectory.json``, ``tensorboard/`` and ``plots/``.
        header: run-level entries of the JSON (layer name, number of classes, conventions, ``min_group_size``);
            must not name groups.
        tensorboard: write TensorBoard scalars (needs the ``tensorboard`` package).
        plot_every_evaluation: rewrite the PNGs after each evaluation (default: only in :meth:`close`).
        per_metric_plots: also write one PNG per (loader, metric).
        binary: the task has two classes (chooses the summary plot's metrics).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        header: Mapping[str, Any] | None = None,
        tensorboard: bool = True,
        plot_every_evaluation: bool = False,
        per_metric_plots: bool = False,
        binary: bool = True,
    ) -> None:
        self.output_dir = str(output_dir)
        self.header = dict(header or {})
        self.use_tensorboard = bool(tensorboard) and _has_tb
        self.plot_every_evaluation = plot_every_evaluation
        self.per_metric_plots = per_metric_plots
        self.binary = binary
        self.history: list[dict[str, Any]] = []
        self._writer: Any = None

    def add(self, entry: Mapping[str, Any]) -> None:
        """Append one evaluation (``{"epoch": e, <loader>: summarised row, ...}``) and write the outputs."""
        self.history.append(dict(entry))
        self.write_json()
        if self.use_tensorboard:
            self._write_scalars(self.history[-1])
        if self.plot_every_evaluation:
            self.write_plots()

    @staticmethod
    def _loaders(entry: Mapping[str, Any]) -> list[str]:
        return [k for k, v in entry.items() if k != "epoch" and isinstance(v, Mapping)]

    def write_json(self) -> str:
        """Rewrite ``nc_trajectory.json`` atomically; return its path."""
        os.makedirs(self.output_dir, exist_ok=True)
        doc = dict(self.header) | {"evaluations": self.history}
        path = os.path.join(self.output_dir, TRAJECTORY_FILE)
        atomic_write_json(path, to_json_safe(doc), indent=1, allow_nan=False)
        return path

    def _write_scalars(self, entry: Mapping[str, Any]) -> None:
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=os.path.join(self.output_dir, "tensorboard"))
        for loader in self._loaders(entry):
            rows = {"overall": entry[loader]["overall"]} | dict(entry[loader]["groups"])
            for gname, row in rows.items():
                for metric, value in row.items():
                    if metric != "n" and isinstance(value, float) and math.isfinite(value):
                        self._writer.add_scalar(f"nc/{loader}/{metric}/{gname}", value, entry["epoch"])
        self._writer.flush()

    # ------------------------------------------------------------------ plots
    def write_plots(self) -> list[str]:
        """Write the PNGs of every loader (one line per reported group and overall, across epochs)."""
        if not self.history:
            return []
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        plot_dir = os.path.join(self.output_dir, "plots")
        os.makedirs(plot_dir, exist_ok=True)
        written = []
        loaders = list(dict.fromkeys(name for e in self.history for name in self._loaders(e)))
        for loader in loaders:
            entries = [e for e in self.history if loader in e]
            epochs = [e["epoch"] for e in entries]
            groups = list(dict.fromkeys(g for e in entries for g in e[loader]["groups"]))
            metrics = [m for m in (*NC_METRIC_NAMES, "f1", "accuracy") if m in entries[-1][loader]["overall"]]
            last = entries[-1][loader]
            labels = {"overall": f"overall (n={last['overall'].get('n', '?')})"}
            labels |= {g: f"{g} (n={last['groups'][g].get('n', '?')})" for g in groups if g in last["groups"]}
            series = {
                m: {
                    g: [
                        (e[loader]["overall"] if g == "overall" else e[loader]["groups"].get(g, {})).get(m, np.nan)
                        for e in entries
                    ]
                    for g in ["overall", *groups]
                }
                for m in metrics
            }
            k = self.header.get("min_group_size", 1)
            title = f"Neural collapse, {loader} split: groups with n >= {k} (after secondary suppression)"
            if not groups:
                title += "; no group can be shown"
            elif last.get("suppressed_groups"):
                title += f"; {last['suppressed_groups']} group(s) suppressed"
            if self.per_metric_plots:
                for m in metrics:
                    fig, ax = plt.subplots(figsize=(5.5, 3.8))
                    self._draw(ax, epochs, series[m], m, labels)
                    fig.suptitle(title, fontsize=8)
                    written.append(self._save(fig, os.path.join(plot_dir, f"{loader}_{m}.png")))
            ncols = 4
            nrows = -(-len(metrics) // ncols)
            fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.0 * nrows + 0.4))
            axes = np.atleast_1d(axes).reshape(-1)
            for ax, m in zip(axes, metrics):
                self._draw(ax, epochs, series[m], m, labels)
            for ax in axes[len(metrics) :]:
                ax.axis("off")
            fig.suptitle(title, fontsize=10)
            written.append(self._save(fig, os.path.join(plot_dir, f"{loader}_all_metrics.png")))
            shown = [m for m in (SUMMARY_METRICS_BINARY if self.binary else SUMMARY_METRICS) if m in metrics]
            fig, axes = plt.subplots(1, len(shown), figsize=(3.8 * len(shown), 3.6))
            for ax, m in zip(np.atleast_1d(axes), shown):
                self._draw(ax, epochs, series[m], m, labels)
            fig.suptitle(title, fontsize=10)
            written.append(self._save(fig, os.path.join(plot_dir, f"{loader}_summary.png")))
        return written

    @staticmethod
    def _save(fig: Any, path: str) -> str:
        import matplotlib.pyplot as plt

        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path

    @staticmethod
    def _draw(ax: Any, epochs: list[int], series: dict[str, list[float]], metric: str, labels: dict[str, str]) -> None:
        for gname, values in series.items():
            overall = gname == "overall"
            ax.plot(
                epochs,
                values,
                marker="o",
                ms=3,
                label=labels.get(gname, gname),
                color="k" if overall else None,
                linestyle="--" if overall else "-",
            )
        finite = [v for vals in series.values() for v in vals if isinstance(v, float) and math.isfinite(v)]
        if metric in ("nc1", "nc3_self_duality") and finite and all(v > 0 for v in finite):
            ax.set_yscale("log")
        if len(epochs) > 2 and epochs[-1] / max(epochs[0], 1) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(NC_METRIC_LABELS.get(metric, metric), fontsize=8)
        ax.legend(fontsize=6)

    # ----------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Write the plots and close the TensorBoard writer."""
        self.write_plots()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def state_dict(self) -> dict[str, Any]:
        """The trajectory so far (for resuming a killed run)."""
        return {"history": to_builtin(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = list(state.get("history", []))
