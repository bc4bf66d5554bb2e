# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Thin Ignite handler that tracks neural collapse (NC1-NC4) overall and per subgroup at chosen epochs.

Following Mouheb et al. (MICCAI 2024), after each chosen epoch of a trainer the handler evaluates the network on its
own loaders (normally the training split **without augmentation**, and the test split) with
:func:`monai_fair.methods.neural_collapse.collect_neural_collapse` (eval mode, forward pre-hook on the final
``nn.Linear``, streaming float64 statistics), keeps only the groups that survive suppression
(:func:`monai_fair.methods.neural_collapse.summarise_evaluation`) and hands the row to a
:class:`monai_fair.methods.neural_collapse.NeuralCollapseTrajectoryWriter` (JSON, TensorBoard, plots; plots are
written when the trainer completes). Under DDP every rank must run the handler on its shard of the loaders (the
statistics are all-reduced); per-group F1 is then from the local rank's predictions only, so switch it off
(``compute_f1=False``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, look_up_option, min_version, optional_import

from monai_fair.methods.neural_collapse.collection import NC4_CENTRES, NeuralCollapseEvaluation, collect_neural_collapse
from monai_fair.methods.neural_collapse.trajectory import NeuralCollapseTrajectoryWriter, summarise_evaluation
from monai_fair.utils import get_named_module

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["NeuralCollapseHandler", "log_spaced_epochs"]


def log_spaced_epochs(max_epochs: int, num: int = 10) -> list[int]:
    """About ``num`` log-spaced epochs in ``1..max_epochs`` (always including 1 and ``max_epochs``)."""
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}.")
    pts = np.unique(np.round(np.geomspace(1, max_epochs, max(int(num), 2))).astype(int))
    return sorted(set(pts.tolist()) | {1, int(max_epochs)})


class NeuralCollapseHandler:
    """Evaluate NC1-NC4 (overall and per subgroup) and per-group F1 at chosen epochs of a trainer (see module doc).

    Args:
        network: the trained model (evaluated in ``eval()`` mode, restored afterwards).
        layer_name: name of the final ``nn.Linear`` (its input are the penultimate features).
        loaders: ``{name: iterable of batch dicts}`` (e.g. ``{"train": train_loader_without_augmentation,
            "test": test_loader}``) or one iterable (named ``"train"``).
        output_dir: where the JSON trajectory, TensorBoard events and PNGs go.
        num_classes: C (>= 2; a single-logit network is binary, C = 2).
        group_names: names of the groups (index = group id); default ``["0", ..., "K-1"]`` with K ``num_groups``.
        num_groups: K, when ``group_names`` is not given.
        epochs: epochs after which to evaluate (e.g. ``log_spaced_epochs(100, 12)``); ``None``: every epoch.
        global_mean: ``"weighted"`` (default) or ``"unweighted"`` global mean ``mu_G``.
        group_means: ``"own"`` (default: each subgroup's own class means) or ``"global"``.
        nc4_centres: ``"two_pass"`` (default, exact) or ``"previous"`` (previous evaluation's means, one pass).
        min_group_size: groups with fewer samples (and those secondary suppression hides) never appear in any
            output: not in the JSON, TensorBoard, plots or warnings.
        image_key, label_key, group_key: batch keys.
        device: device for the forward passes (default: the network's).
        prepare_batch: optional ``batch -> (inputs, labels, groups)`` replacing the key lookup.
        tensorboard: write TensorBoard scalars (needs the ``tensorboard`` package).
        plot_every_evaluation: also rewrite the PNGs after each evaluation (default: only at the end).
        per_metric_plots: also write one PNG per (loader, metric).
        compute_f1: add per-group F1 / accuracy.
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
        min_group_size: int = 1,
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
        self.nc4_centres = look_up_option(nc4_centres, NC4_CENTRES)
        self.global_mean = look_up_option(global_mean, ("weighted", "unweighted"))
        self.group_means = look_up_option(group_means, ("own", "global"))
        if group_names is None:
            if num_groups is None:
                raise ValueError("give group_names or num_groups.")
            group_names = [str(i) for i in range(int(num_groups))]
        get_named_module(network, layer_name, torch.nn.Linear)  # fail early on a wrong name
        self.network, self.layer_name = network, layer_name
        self.loaders = dict(loaders) if isinstance(loaders, Mapping) else {"train": loaders}
        self.num_classes = max(int(num_classes), 2)
        self.group_names = [str(n) for n in group_names]
        self.epochs = None if epochs is None else {int(e) for e in epochs}
        self.min_group_size = int(min_group_size)
        self.keys = {"image_key": image_key, "label_key": label_key, "group_key": group_key}
        self.device, self.prepare_batch = device, prepare_batch
        self.compute_f1 = compute_f1
        header = {
            "layer_name": layer_name,
            "num_classes": self.num_classes,
            "min_group_size": self.min_group_size,
            "options": {
                "global_mean": self.global_mean,
                "group_means": self.group_means,
                "nc4_centres": self.nc4_centres,
                "nc1_scale": "1/C",
                "suppression": "groups with n < min_group_size, plus secondary suppression, are never shown",
            },
        }
        self.writer = NeuralCollapseTrajectoryWriter(
            output_dir, header, tensorboard, plot_every_evaluation, per_metric_plots, binary=self.num_classes == 2
        )
        self._previous: dict[str, NeuralCollapseEvaluation] = {}

    @property
    def history(self) -> list[dict[str, Any]]:
        """The summarised evaluations so far."""
        return self.writer.history

    def attach(self, engine: Engine) -> None:
        """Evaluate after the chosen epochs of ``engine`` and write the plots when it completes."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.writer.close())

    def __call__(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        if self.epochs is None or epoch in self.epochs:
            self.evaluate(epoch)

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """Evaluate every loader now; append the (suppressed) row to the trajectory, write it and return it."""
        entry: dict[str, Any] = {"epoch": int(epoch)}
        for name, loader in self.loaders.items():
            ev = collect_neural_collapse(
                self.network,
                self.layer_name,
                loader,
                self.num_classes,
                len(self.group_names),
                global_mean=self.global_mean,
                group_means=self.group_means,
                nc4_centres=self.nc4_centres,
                previous=self._previous.get(name),
                device=self.device,
                prepare_batch=self.prepare_batch,
                min_group_size=self.min_group_size,
                **self.keys,
            )
            self._previous[name] = ev
            extra = {"nc4_centres": self.nc4_centres, "layer_name": self.layer_name}
            entry[name] = summarise_evaluation(ev, self.group_names, self.min_group_size, self.compute_f1, extra)
        self.writer.add(entry)
        return entry

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """The trajectory so far and the previous class means (for ``nc4_centres="previous"``), so that a resumed
        run (:class:`monai_fair.handlers.TrainingResumeHandler`) continues the same trajectory file and plots."""
        previous = {
            k: [v.class_means[0].cpu(), v.class_means[1].cpu(), v.shift.cpu()] for k, v in self._previous.items()
        }
        return self.writer.state_dict() | {"previous": previous}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.writer.load_state_dict(state)
        self._previous = {
            k: NeuralCollapseEvaluation({}, torch.zeros(0), torch.zeros(0), torch.zeros(0), (v[0], v[1]), v[2])
            for k, v in state.get("previous", {}).items()
        }

    def finalize(self) -> None:
        """Write the plots and close the TensorBoard writer (called when the trainer completes)."""
        self.writer.close()
