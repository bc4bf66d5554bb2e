# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Ignite handler that tracks neural collapse (NC1-NC4) overall and per subgroup across training epochs.

Following Mouheb et al. (MICCAI 2024), the handler re-runs the network over its own loaders (normally the training
split **without augmentation**, and optionally the test split) at chosen epochs, reads the penultimate features with
a forward **pre**-hook on a named module (the final ``nn.Linear``; its ``weight``/``bias`` are the classifier ``W``,
``b``), and accumulates the NC statistics in one memory-bounded pass (:class:`monai_fair.metrics.
NeuralCollapseAccumulator`). The network is put in ``eval()`` mode (BatchNorm running statistics, no dropout) and
restored afterwards. Outputs, under ``output_dir``:

* ``nc_trajectory.json``: every evaluation (epoch, loader, overall / per-group NC metrics, per-(group, class)
  counts, per-group F1 and accuracy), rewritten after each evaluation;
* TensorBoard scalars ``nc/<loader>/<metric>/<group>`` (``torch.utils.tensorboard.SummaryWriter``) in
  ``output_dir/tensorboard``;
* PNG plots (matplotlib, Agg) of each metric per subgroup (and overall) across epochs: one grid figure
  ``plots/<loader>_all_metrics.png``, a summary ``plots/<loader>_summary.png`` (NC1, NC2 ETF distance and equinorm
  (of the classifier rows when C = 2), NC3, NC4, F1) and, with ``per_metric_plots``,
  ``plots/<loader>_<metric>.png``; written when the run completes (and after each evaluation if asked).

Under DDP the NC statistics are all-reduced (every rank must see its shard of the loader); the per-group F1 is then
computed from the local rank's predictions only.

NC4 needs the class means before classifying, so by default (``nc4_centres="two_pass"``) each evaluation makes a
second forward pass over the loader (exact, twice the cost); ``"previous"`` uses the class means of the previous
evaluation (one pass; NC4 is NaN at the first evaluation and lags by one evaluation).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.engines.utils import get_batch_group
from monai_fair.methods.neural_collapse.accumulator import NeuralCollapseAccumulator
from monai_fair.methods.neural_collapse.metrics import NC_METRIC_NAMES, classifier_from_linear, two_row_logits
from monai_fair.utils.serialization import to_builtin, to_json_safe

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
SummaryWriter, _has_tb = optional_import("torch.utils.tensorboard", name="SummaryWriter")

__all__ = ["NeuralCollapseHandler", "PenultimateFeatureHook", "log_spaced_epochs"]

TRAJECTORY_FILE = "nc_trajectory.json"
SUMMARY_METRICS = ("nc1", "nc2_etf_means", "nc2_equinorm_means", "nc3_self_duality", "nc4_agreement", "f1")
# C = 2: the NC2 means metrics depend on the class counts only (see monai_fair.methods.neural_collapse.metrics)
SUMMARY_METRICS_BINARY = ("nc1", "nc2_etf_weights", "nc2_equinorm_weights", "nc3_self_duality", "nc4_agreement", "f1")


def log_spaced_epochs(max_epochs: int, num: int = 10) -> list[int]:
    """About ``num`` log-spaced epochs in ``1..max_epochs`` (always including 1 and ``max_epochs``)."""
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}.")
    pts = np.unique(np.round(np.geomspace(1, max_epochs, max(int(num), 2))).astype(int))
    return sorted(set(pts.tolist()) | {1, int(max_epochs)})


class PenultimateFeatureHook:
    """Context manager: a forward pre-hook on ``network.<layer_name>`` that keeps the layer's (flattened) input.

    Args:
        network: the model.
        layer_name: dotted module name as in ``network.named_modules()`` (e.g. ``"fc"``, ``"class_layers.out"``).
    """

    def __init__(self, network: torch.nn.Module, layer_name: str) -> None:
        modules = dict(network.named_modules())
        if layer_name not in modules:
            linears = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]
            raise KeyError(
                f"network {type(network).__name__} has no module named '{layer_name}'; its nn.Linear layers are "
                f"{linears}."
            )
        self.module = modules[layer_name]
        self.layer_name = layer_name
        self.features: torch.Tensor | None = None
        self._handle: Any = None

    def _hook(self, module: torch.nn.Module, args: tuple) -> None:
        x = args[0]
        self.features = x.detach().reshape(x.shape[0], -1)

    def pop(self) -> torch.Tensor:
        """The features captured by the last forward pass (and forget them)."""
        if self.features is None:
            raise RuntimeError(f"the forward pass did not reach module '{self.layer_name}'; name the final nn.Linear.")
        feats, self.features = self.features, None
        return feats

    def __enter__(self) -> PenultimateFeatureHook:
        self._handle = self.module.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()
        self.features = None

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The hooked layer's ``(W, b)`` as float64 with >= 2 rows (see ``classifier_from_linear``)."""
        return classifier_from_linear(self.module)


class NeuralCollapseHandler:
    """Compute NC1-NC4 (overall and per subgroup) and per-group F1 at chosen epochs of a trainer.

    Args:
        network: the trained model (evaluated in ``eval()`` mode, restored afterwards).
        layer_name: name of the final ``nn.Linear`` (its input are the penultimate features).
        loaders: ``{name: iterable of batch dicts}`` (e.g. ``{"train": train_loader_without_augmentation,
            "test": test_loader}``) or one iterable (named ``"train"``).
        output_dir: where the JSON trajectory, TensorBoard events and PNGs go.
        num_classes: C (>= 2; a single-logit network is binary, C = 2).
        group_names: names of the groups (index = group id); defaults to ``["0", ..., "K-1"]`` with K
            ``num_groups``.
        num_groups: K, when ``group_names`` is not given.
        epochs: epochs after which to evaluate (e.g. ``log_spaced_epochs(100, 12)``); ``None``: every epoch.
        global_mean: ``"weighted"`` (default) or ``"unweighted"`` global mean ``mu_G``.
        group_means: ``"own"`` (default: each subgroup's own class means) or ``"global"``.
        nc4_centres: ``"two_pass"`` (default, exact) or ``"previous"`` (previous evaluation's means, one pass).
        image_key, label_key, group_key: batch keys.
        device: device for the forward passes (default: the network's).
        prepare_batch: optional ``batch -> (inputs, labels, groups)`` replacing the key lookup.
        tensorboard: write TensorBoard scalars (needs the ``tensorboard`` package).
        plot_every_evaluation: also rewrite the PNGs after each evaluation (default: only at the end).
        per_metric_plots: also write one PNG per (loader, metric); by default each loader gets one grid PNG with
            every metric (``<loader>_all_metrics.png``) and a summary PNG (``<loader>_summary.png``).
        compute_f1: add per-group F1 / accuracy (``monai_fair.metrics.compute_group_classification_metrics``).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        layer_name: str,
        loaders: Mapping[str, Iterable] | Iterable,
        output_dir: str | os.PathLike,
        num_classes: int,
        group_names: Sequence[str] | None = None,
        num_groups: int | None = None,
        epochs: Sequence[int] | None = None,
        global_mean: str = "weighted",
        group_means: str = "own",
        nc4_centres: str = "two_pass",
        image_key: str = "image",
        label_key: str = "label",
        group_key: str = "group",
        device: torch.device | str | None = None,
        prepare_batch: Callable | None = None,
        tensorboard: bool = True,
        plot_every_evaluation: bool = False,
        per_metric_plots: bool = False,
        compute_f1: bool = True,
    ) -> None:
        if nc4_centres not in ("two_pass", "previous"):
            raise ValueError(f"nc4_centres must be 'two_pass' or 'previous', got {nc4_centres!r}.")
        if global_mean not in ("weighted", "unweighted") or group_means not in ("own", "global"):
            raise ValueError(f"invalid global_mean={global_mean!r} / group_means={group_means!r}.")
        if group_names is None:
            if num_groups is None:
                raise ValueError("give group_names or num_groups.")
            group_names = [str(i) for i in range(int(num_groups))]
        self.network = network
        PenultimateFeatureHook(network, layer_name)  # fail early on a wrong name
        self.layer_name = layer_name
        self.loaders = dict(loaders) if isinstance(loaders, Mapping) else {"train": loaders}
        self.output_dir = str(output_dir)
        self.num_classes = max(int(num_classes), 2)
        self.group_names = [str(n) for n in group_names]
        self.epochs = None if epochs is None else {int(e) for e in epochs}
        self.global_mean, self.group_means, self.nc4_centres = global_mean, group_means, nc4_centres
        self.image_key, self.label_key, self.group_key = image_key, label_key, group_key
        self.device = device
        self.prepare_batch = prepare_batch
        self.plot_every_evaluation = plot_every_evaluation
        self.per_metric_plots = per_metric_plots
        self.compute_f1 = compute_f1
        self.use_tensorboard = tensorboard and _has_tb
        self._writer: Any = None
        self._previous: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- ignite
    def attach(self, engine: Engine) -> None:
        """Evaluate after the chosen epochs of ``engine`` and write the plots when it completes."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.finalize())

    def __call__(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        if self.epochs is None or epoch in self.epochs:
            self.evaluate(epoch)

    # -------------------------------------------------------------- evaluation
    def _batch(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.prepare_batch is not None:
            x, y, g = self.prepare_batch(batch)
        else:
            if self.label_key not in batch or self.image_key not in batch:
                raise KeyError(f"batch lacks '{self.image_key}' or '{self.label_key}' (keys: {sorted(batch)}).")
            x, y, g = batch[self.image_key], batch[self.label_key], get_batch_group(batch, self.group_key)
        y = torch.as_tensor(y).reshape(-1).long()
        return torch.as_tensor(x).to(device), y, torch.as_tensor(g).reshape(-1).long()

    def _passes(
        self,
        loader: Iterable,
        hook: PenultimateFeatureHook,
        acc: NeuralCollapseAccumulator,
        device: torch.device,
        nc4: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores, labels, groups = [], [], []
        for batch in loader:
            x, y, g = self._batch(batch, device)
            out = self.network(x)
            feats = hook.pop()
            acc.update(feats, y, g)
            if nc4:
                acc.update_nc4(feats, out, g)
            scores.append(torch.softmax(two_row_logits(out).float(), 1).cpu())
            labels.append(y)
            groups.append(g)
        return torch.cat(scores), torch.cat(labels), torch.cat(groups)

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, Any]:
        """Run the NC evaluation on every loader now; append it to the trajectory and write the outputs."""
        net = self.network
        was_training = net.training
        device = torch.device(self.device) if self.device is not None else next(net.parameters()).device
        entry: dict[str, Any] = {"epoch": int(epoch)}
        net.eval()
        try:
            with PenultimateFeatureHook(net, self.layer_name) as hook:
                weight, _ = hook.classifier()
                for name, loader in self.loaders.items():
                    prev = self._previous.get(name)
                    acc = NeuralCollapseAccumulator(
                        self.num_classes, len(self.group_names), shift=None if prev is None else prev[2]
                    )
                    one_pass = self.nc4_centres == "previous"
                    if one_pass and prev is not None:
                        acc.set_nc4_centres(prev[0], prev[1])
                    scores, labels, groups = self._passes(loader, hook, acc, device, nc4=one_pass and prev is not None)
                    acc.all_reduce("moments")
                    if not one_pass:
                        for batch in loader:
                            x, _, g = self._batch(batch, device)
                            out = net(x)
                            acc.update_nc4(hook.pop(), out, g)
                    acc.all_reduce("nc4")
                    res = acc.compute(weight, global_mean=self.global_mean, group_means=self.group_means)
                    overall_mean, group_mean = acc.class_means()
                    n = acc.counts.sum(0)
                    shift_mean = (overall_mean.nan_to_num() * n[:, None]).sum(0) / n.sum()
                    self._previous[name] = (overall_mean, group_mean, shift_mean)
                    entry[name] = self._format(res, scores, labels, groups)
        finally:
            net.train(was_training)
        self.history.append(entry)
        self._write(entry)
        return entry

    def _format(self, res: dict, scores: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> dict:
        out = {
            "overall": res["overall"],
            "groups": {self.group_names[g]: row for g, row in res["groups"].items()},
            "counts": {self.group_names[g]: row for g, row in enumerate(res["counts"])},
            "options": res["options"] | {"nc4_centres": self.nc4_centres, "layer_name": self.layer_name},
        }
        if self.compute_f1:
            from monai_fair.metrics.group_classification import compute_group_classification_metrics

            y_score = scores[:, 1] if scores.shape[1] == 2 else scores
            cls = compute_group_classification_metrics(
                y_score.numpy(), labels.numpy(), groups.numpy(), num_groups=len(self.group_names)
            )
            for key in ("f1", "accuracy"):
                out["overall"][key] = float(cls["overall"][key])
                for gid, row in cls["groups"].items():
                    out["groups"][self.group_names[int(gid)]][key] = float(row[key])
        return out

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """The trajectory so far and the previous class means (for ``nc4_centres="previous"``), so that a resumed
        run (:class:`monai_fair.handlers.TrainingResumeHandler`) continues the same trajectory file and plots."""
        previous = {k: [t.cpu() for t in v] for k, v in self._previous.items()}
        return {"history": to_builtin(self.history), "previous": previous}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = list(state.get("history", []))
        self._previous = {k: tuple(v) for k, v in state.get("previous", {}).items()}

    # ------------------------------------------------------------------ output
    def _write(self, entry: dict[str, Any]) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        doc = {
            "layer_name": self.layer_name,
            "num_classes": self.num_classes,
            "group_names": self.group_names,
            "options": {
                "global_mean": self.global_mean,
                "group_means": self.group_means,
                "nc4_centres": self.nc4_centres,
                "nc1_scale": "1/C",
            },
            "evaluations": self.history,
        }
        tmp = os.path.join(self.output_dir, TRAJECTORY_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(to_json_safe(doc), f, indent=1, allow_nan=False)
        os.replace(tmp, os.path.join(self.output_dir, TRAJECTORY_FILE))
        if self.use_tensorboard:
            if self._writer is None:
                self._writer = SummaryWriter(log_dir=os.path.join(self.output_dir, "tensorboard"))
            for loader in self.loaders:
                rows = {"overall": entry[loader]["overall"]} | entry[loader]["groups"]
                for gname, row in rows.items():
                    for metric, value in row.items():
                        if metric != "n" and isinstance(value, float) and math.isfinite(value):
                            self._writer.add_scalar(f"nc/{loader}/{metric}/{gname}", value, entry["epoch"])
            self._writer.flush()
        if self.plot_every_evaluation:
            self.write_plots()

    def write_plots(self) -> list[str]:
        """Write one PNG per (loader, metric) with a line per subgroup (and overall) across epochs."""
        if not self.history:
            return []
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        plot_dir = os.path.join(self.output_dir, "plots")
        os.makedirs(plot_dir, exist_ok=True)
        epochs = [e["epoch"] for e in self.history]
        written = []
        metrics = list(NC_METRIC_NAMES) + (["f1", "accuracy"] if self.compute_f1 else [])
        for loader in self.loaders:

            def row(e: dict, gname: str, loader: str = loader) -> dict:
                return e[loader]["overall"] if gname == "overall" else e[loader]["groups"].get(gname, {})

            series = {
                m: {g: [row(e, g).get(m, np.nan) for e in self.history] for g in ["overall"] + self.group_names}
                for m in metrics
            }
            if self.per_metric_plots:
                for m in metrics:
                    fig, ax = plt.subplots(figsize=(5, 3.5))
                    self._draw(ax, epochs, series[m], m)
                    written.append(self._save(fig, os.path.join(plot_dir, f"{loader}_{m}.png")))
            ncols = 4
            nrows = -(-len(metrics) // ncols)
            fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows))
            axes = np.atleast_1d(axes).reshape(-1)
            for ax, m in zip(axes, metrics):
                self._draw(ax, epochs, series[m], m)
            for ax in axes[len(metrics) :]:
                ax.axis("off")
            written.append(self._save(fig, os.path.join(plot_dir, f"{loader}_all_metrics.png")))
            summary = SUMMARY_METRICS_BINARY if self.num_classes == 2 else SUMMARY_METRICS
            shown = [m for m in summary if m in metrics]
            fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.2))
            for ax, m in zip(np.atleast_1d(axes), shown):
                self._draw(ax, epochs, series[m], m)
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
    def _draw(ax: Any, epochs: list[int], series: dict[str, list[float]], metric: str) -> None:
        for gname, values in series.items():
            ax.plot(
                epochs,
                values,
                marker="o",
                ms=3,
                label=gname,
                color="k" if gname == "overall" else None,
                linestyle="--" if gname == "overall" else "-",
            )
        if metric in ("nc1", "nc3_self_duality") and all(
            v > 0 for vals in series.values() for v in vals if isinstance(v, float) and math.isfinite(v)
        ):
            ax.set_yscale("log")
        if len(epochs) > 2 and epochs[-1] / max(epochs[0], 1) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=9)
        ax.legend(fontsize=7)

    def finalize(self) -> None:
        """Write the plots and close the TensorBoard writer (called when the trainer completes)."""
        self.write_plots()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
