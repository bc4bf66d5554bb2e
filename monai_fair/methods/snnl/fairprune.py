# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairPrune baseline: unstructured pruning by per-group second-order saliency (no fine-tuning).

Wu, Zeng, Xu, Shi & Hu, "FairPrune: Achieving Fairness Through Pruning for Dermatological Disease Diagnosis",
MICCAI 2022 (arXiv 2203.02110). For every prunable weight ``theta_i`` (conv/linear weights; biases and norm
parameters are skipped, as in the public reimplementation):

.. math::

    S_i = \\tfrac12 \\theta_i^2 \\left(H^{(u)}_{ii} - \\beta H^{(p)}_{ii}\\right)

with ``H^{(g)}_{ii}`` the Hessian diagonal of the loss on group ``g`` (``u`` unprivileged, ``p`` privileged).
The weights with the *smallest* ``S_i`` (important to the privileged group, unimportant to the unprivileged one)
are zeroed, ``prune_ratio`` of the remaining weights per iteration, until the bias metric has not improved for
``patience`` iterations; the best iteration's masks are kept. :class:`FairPruneEngine` runs this as an Ignite engine
(one FairPrune iteration per epoch, validation EOdds as the bias metric, Ignite's ``EarlyStopping`` for the patience
and, as for SCP, a macro-F1 floor: an iteration whose validation macro-F1 dropped more than ``max_f1_drop`` is never
kept).

**Hessian-diagonal approximation (documented choice).** We use the *empirical Fisher* diagonal
``H_ii ~ 1/n_g sum_{k in g} (d loss_k / d theta_i)^2``: per-sample gradients of the cross-entropy computed in one
vectorised pass with :func:`torch.func.vmap` over :func:`torch.func.grad` (model in eval mode, BatchNorm uses its
running statistics), squared and averaged per group with one ``index_add``. The public reimplementation uses
BackPACK's exact diagonal GGN instead; for a softmax/CE head the GGN diagonal is the *expected* Fisher
(labels sampled from the model), while the empirical Fisher uses the true labels. Both are positive
semi-definite diagonal curvature estimates; the empirical Fisher needs no extra dependency.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import prune

from monai_fair.methods.snnl.metrics import FATE_FAIRNESS_KEY, FATEMetricHandler, scp_macro_f1
from monai_fair.utils import check_group_ids, to_json_safe

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
EarlyStopping, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EarlyStopping")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["prunable_weights", "group_fisher_diagonal", "fairprune_saliency", "fairprune_step", "FairPruneEngine"]


def prunable_weights(model: nn.Module) -> dict[str, nn.Module]:
    """Modules whose ``weight`` FairPrune may prune: Conv1d/2d/3d and Linear (name -> module)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))}


def _unpack(batch: Any, image_key: str, label_key: str, group_key: str) -> tuple[torch.Tensor, ...]:
    if isinstance(batch, Mapping):
        return batch[image_key], batch[label_key], batch[group_key]
    return batch[0], batch[1], batch[2]


def group_fisher_diagonal(
    model: nn.Module,
    batches: Iterable[Any],
    num_groups: int,
    image_key: str = "image",
    label_key: str = "label",
    group_key: str = "group",
    device: torch.device | str | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-group empirical-Fisher diagonal of the CE loss for every prunable weight.

    Returns:
        ``(fisher, counts)``: ``fisher[name]`` is ``(num_groups, *weight.shape)`` (mean squared per-sample
        gradient of group ``g``; zeros for a group with no sample) and ``counts`` the samples per group.
    """
    device = device or next(model.parameters()).device
    mods = prunable_weights(model)
    names = [f"{n}.weight" if n else "weight" for n in mods]
    was_training = model.training
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    # pruned weights: the forward uses weight_orig * weight_mask, so differentiate w.r.t. the effective weight
    eff_names = {}
    for n, m in mods.items():
        key = f"{n}.weight" if n else "weight"
        if hasattr(m, "weight_orig"):
            eff_names[key] = (f"{n}.weight_orig" if n else "weight_orig", f"{n}.weight_mask" if n else "weight_mask")

    def loss_one(w: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = dict(params)
        for key, value in w.items():
            if key in eff_names:
                p[eff_names[key][0]] = value  # mask is a buffer; orig*mask = value*mask = value where unpruned
            else:
                p[key] = value
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return nn.functional.cross_entropy(out, y.reshape(1).long())

    w0 = {}
    for key in names:
        w0[key] = params[eff_names[key][0]] if key in eff_names else params[key]
    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    fisher = {k: torch.zeros((num_groups, *v.shape), device=device) for k, v in w0.items()}
    counts = torch.zeros(num_groups, device=device)
    try:
        for batch in batches:
            x, y, g = _unpack(batch, image_key, label_key, group_key)
            x, y = torch.as_tensor(x).to(device), torch.as_tensor(y).reshape(-1).to(device)
            if type(x) is not torch.Tensor:  # MetaTensor -> plain tensor for torch.func
                x = x.as_subclass(torch.Tensor)
            g = check_group_ids(g, num_groups, name=f"FairPrune batch['{group_key}']", device=device)
            grads = per_sample(w0, x, y)
            for k, v in grads.items():
                fisher[k].index_add_(0, g, v.pow(2))
            counts += torch.bincount(g, minlength=num_groups).to(counts)
    finally:
        model.train(was_training)
    for k in fisher:
        fisher[k] /= counts.clamp_min(1).reshape(-1, *([1] * (fisher[k].ndim - 1)))
    return fisher, counts


def fairprune_saliency(
    model: nn.Module,
    fisher: Mapping[str, torch.Tensor],
    unprivileged: int,
    privileged: int | list[int],
    beta: float = 0.2,
) -> dict[str, torch.Tensor]:
    """``S = 1/2 theta^2 (H_unpriv - beta * H_priv)`` per prunable weight (``privileged`` may list several groups,
    whose curvatures are averaged)."""
    priv = [privileged] if isinstance(privileged, int) else list(privileged)
    params = dict(model.named_parameters())
    sal = {}
    for key, h in fisher.items():
        theta = params.get(key + "_orig", params.get(key))  # pruned modules keep theta in weight_orig
        sal[key] = 0.5 * theta.detach().pow(2) * (h[unprivileged] - beta * h[priv].mean(0))
    return sal


def _get_mask(module: nn.Module) -> torch.Tensor:
    mask = getattr(module, "weight_mask", None)
    return torch.ones_like(module.weight) if mask is None else mask


@torch.no_grad()
def fairprune_step(model: nn.Module, saliency: Mapping[str, torch.Tensor], prune_ratio: float) -> int:
    """Zero the ``prune_ratio`` fraction of the still-unpruned prunable weights with the smallest saliency
    (one global ranking over all layers). Returns the number of weights pruned."""
    mods = prunable_weights(model)
    keys = [f"{n}.weight" if n else "weight" for n in mods]
    masks = [_get_mask(m) for m in mods.values()]
    flat_s = torch.cat([saliency[k].flatten() for k in keys])
    flat_m = torch.cat([m.flatten() for m in masks]).bool()
    n_prune = int(prune_ratio * int(flat_m.sum()))
    if n_prune <= 0:
        return 0
    flat_s = torch.where(flat_m, flat_s, torch.full_like(flat_s, float("inf")))
    idx = torch.topk(flat_s, n_prune, largest=False).indices
    new = flat_m.clone()
    new[idx] = False
    start = 0
    for m, old in zip(mods.values(), masks):
        part = new[start : start + old.numel()].reshape(old.shape).to(old.dtype)
        start += old.numel()
        if hasattr(m, "weight_mask"):
            m.weight_mask.copy_(part)
            m.weight = m.weight_orig * m.weight_mask
        else:
            prune.custom_from_mask(m, "weight", part)
    return n_prune


def _masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: _get_mask(m).clone() for n, m in prunable_weights(model).items()}


@torch.no_grad()
def _set_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    for n, m in prunable_weights(model).items():
        if hasattr(m, "weight_mask"):
            m.weight_mask.copy_(masks[n])
            m.weight = m.weight_orig * m.weight_mask
        else:
            prune.custom_from_mask(m, "weight", masks[n])


class FairPruneEngine(Engine):
    """FairPrune as an Ignite engine: each epoch is one iteration *Fisher diagonals -> saliency -> prune
    ``prune_ratio`` -> evaluate* on the validation evaluator (see module doc). No fine-tuning.

    ``STARTED`` evaluates the unpruned network (iteration 0, always eligible) and, with ``unprivileged=None``, takes
    as unprivileged the group (of at least ``min_group_size`` validation samples) with the lowest validation
    macro-F1; every other such group is privileged. After each iteration the validation mean-form EOdds (the SCP
    definition, :data:`monai_fair.methods.snnl.FATE_FAIRNESS_KEY`) is the bias metric: an iteration is kept when it
    is the lowest so far among those meeting the macro-F1 floor; ``patience`` iterations without a new best stop the
    engine (Ignite ``EarlyStopping``). ``COMPLETED`` restores the best iteration's masks, folds them into the weights
    and writes the model and a JSON history.

    Args:
        network: the trained network (pruned in place).
        batches: iterable of batches (dicts with ``image``/``label``/``group`` or tuples) for the Fisher diagonals;
            group-stratified batches are recommended.
        evaluator: validation evaluator (outputs ``pred`` probabilities, ``label``, ``group``); a
            :class:`~monai_fair.methods.snnl.FATEMetricHandler` is attached to it.
        num_groups: number of groups K.
        max_epochs: maximum number of FairPrune iterations.
        unprivileged: group whose curvature protects a weight (``None``: chosen on validation, see above).
        privileged: group(s) whose curvature marks a weight prunable (``None``: every other group).
        beta: weight of the privileged curvature.
        prune_ratio: fraction of the still-unpruned conv/linear weights pruned per iteration.
        patience: iterations without a new best before stopping.
        max_f1_drop: largest allowed drop of validation macro-F1 below the unpruned model's (``None``: no floor).
        min_group_size: groups below it are left out of the EOdds and of the unprivileged choice.
        metric_prefix: prefix of the evaluator's metric names.
        save_path, history_path: where the pruned ``state_dict`` and the JSON history go (``None``: not saved).
        image_key, label_key, group_key, device: see :func:`group_fisher_diagonal`.
        train_handlers: further Ignite handlers (objects with ``attach(engine)``) attached to this engine.
    """

    def __init__(
        self,
        network: nn.Module,
        batches: Iterable[Any],
        evaluator: Engine,
        num_groups: int,
        max_epochs: int = 10,
        unprivileged: int | None = None,
        privileged: int | Sequence[int] | None = None,
        beta: float = 0.2,
        prune_ratio: float = 0.05,
        patience: int = 5,
        max_f1_drop: float | None = 0.05,
        min_group_size: int = 1,
        metric_prefix: str = "val_",
        save_path: str | None = None,
        history_path: str | None = None,
        image_key: str = "image",
        label_key: str = "label",
        group_key: str = "group",
        device: torch.device | str | None = None,
        train_handlers: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(self._iteration)
        if not 0.0 < prune_ratio < 1.0:
            raise ValueError(f"prune_ratio must be in (0, 1), got {prune_ratio}.")
        if max_f1_drop is not None and not max_f1_drop >= 0:
            raise ValueError(f"max_f1_drop must be >= 0 (or None for no floor), got {max_f1_drop}.")
        self.network, self.batches, self.evaluator = network, batches, evaluator
        self.num_groups, self.max_epochs = int(num_groups), int(max_epochs)
        self.unprivileged = unprivileged
        self.privileged = privileged
        self.beta, self.prune_ratio = float(beta), float(prune_ratio)
        self.max_f1_drop = None if max_f1_drop is None else float(max_f1_drop)
        self.min_group_size = int(min_group_size)
        self.prefix = metric_prefix
        self.save_path, self.history_path = save_path, history_path
        self.fisher_kwargs = {"image_key": image_key, "label_key": label_key, "group_key": group_key, "device": device}
        self.metric = FATEMetricHandler(1.0, None, num_groups, min_group_size, prefix=metric_prefix)
        self.metric.attach(evaluator, metric_prefix + "scp")
        self.early_stopping = EarlyStopping(int(patience), lambda _: self._score, self)
        self.add_event_handler(Events.STARTED, self._started)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        self.add_event_handler(Events.COMPLETED, self._completed)
        for handler in train_handlers or ():
            handler.attach(self)
        self.logger_ = logging.getLogger(__name__)
        self.history: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self._score = 0.0

    def run(self, data: Any = None, max_epochs: int | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run up to ``max_epochs`` FairPrune iterations (``data`` is ignored: one step per epoch)."""
        return super().run([0], max_epochs=max_epochs or self.max_epochs, **kwargs)

    def evaluate(self) -> dict[str, float]:
        """Run the evaluator; ``{"macro_f1", "eodds_mean"}`` on its data."""
        self.evaluator.run()
        metrics = self.evaluator.state.metrics
        return {k: float(metrics[self.prefix + k]) for k in ("macro_f1", FATE_FAIRNESS_KEY)}

    def _choose_groups(self) -> None:
        score, label, group = self.metric.metric_fn.get_buffer()
        probs = torch.stack([1.0 - score[:, 0], score[:, 0]], 1) if score.shape[1] == 1 else score
        g = group[:, 0].long()
        f1 = scp_macro_f1(probs, label[:, 0], g, self.num_groups)
        big = torch.bincount(g, minlength=self.num_groups) >= max(self.min_group_size, 1)
        if int(big.sum()) < 2:
            raise ValueError(
                f"FairPrune needs two groups with >= min_group_size={self.min_group_size} validation samples."
            )
        if self.unprivileged is None:
            self.unprivileged = int(torch.where(big, f1.nan_to_num(math.inf), math.inf).argmin())
        if self.privileged is None:
            self.privileged = [k for k in range(self.num_groups) if k != self.unprivileged and bool(big[k])]

    def _record(self, metrics: dict[str, float]) -> None:
        total = sum(m.weight.numel() for m in prunable_weights(self.network).values())
        zeros = sum(int((_get_mask(m) == 0).sum()) for m in prunable_weights(self.network).values())
        base_f1 = self.history[0]["macro_f1"] if self.history else metrics["macro_f1"]
        ok = self.max_f1_drop is None or metrics["macro_f1"] >= base_f1 - self.max_f1_drop - 1e-12
        it = int(self.state.epoch) if self.history else 0
        self.history.append({"iteration": it, **metrics, "pruned_fraction": zeros / total, "meets_floor": bool(ok)})
        eo = metrics[FATE_FAIRNESS_KEY]
        self._score = -eo if ok and math.isfinite(eo) else -math.inf  # NaN EOdds (< 2 reported groups): not eligible
        if ok and (self._best is None or self._score > self._best[0]):
            self._best = (self._score, it, _masks(self.network))
        self.logger_.info(
            f"FairPrune iteration {it}: validation macro-F1 {metrics['macro_f1']:.4f}, EOdds "
            f"{metrics[FATE_FAIRNESS_KEY]:.4f}, pruned {zeros / total:.3f}" + ("" if ok else " (below the floor)")
        )

    def _started(self, _: Engine) -> None:
        self.history, self.summary, self._best = [], None, None
        self.early_stopping.reset()
        metrics = self.evaluate()
        self._choose_groups()
        self._record(metrics)
        self.early_stopping(self)

    def _iteration(self, engine: Engine, _: Any) -> None:
        fisher, _counts = group_fisher_diagonal(self.network, self.batches, self.num_groups, **self.fisher_kwargs)
        sal = fairprune_saliency(self.network, fisher, self.unprivileged, self.privileged, self.beta)
        fairprune_step(self.network, sal, self.prune_ratio)

    def _epoch_completed(self, _: Engine) -> None:
        self._record(self.evaluate())
        self.early_stopping(self)

    def _completed(self, _: Engine) -> None:
        _, best_it, masks = self._best  # iteration 0 always meets the floor
        _set_masks(self.network, masks)
        for m in prunable_weights(self.network).values():
            if hasattr(m, "weight_mask"):
                prune.remove(m, "weight")
        self.summary = {
            "best_iteration": best_it,
            "unprivileged": self.unprivileged,
            "privileged": self.privileged,
            "iterations": self.history,
            "settings": {
                "beta": self.beta,
                "prune_ratio": self.prune_ratio,
                "patience": self.early_stopping.patience,
                "max_f1_drop": self.max_f1_drop,
                "bias_metric": f"validation {FATE_FAIRNESS_KEY} (SCP mean form), minimised",
                "curvature": "empirical Fisher diagonal per group",
            },
        }
        if self.save_path:
            os.makedirs(os.path.dirname(os.path.abspath(self.save_path)), exist_ok=True)
            torch.save(self.network.state_dict(), self.save_path)
        if self.history_path:
            os.makedirs(os.path.dirname(os.path.abspath(self.history_path)), exist_ok=True)
            with open(self.history_path, "w") as f:
                json.dump(to_json_safe(copy.deepcopy(self.summary)), f, indent=2, allow_nan=False)
