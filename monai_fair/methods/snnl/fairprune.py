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
``patience`` iterations; the best iteration's masks are kept.

**Hessian-diagonal approximation (documented choice).** We use the *empirical Fisher* diagonal
``H_ii ~ 1/n_g sum_{k in g} (d loss_k / d theta_i)^2``: per-sample gradients of the cross-entropy computed in one
vectorised pass with :func:`torch.func.vmap` over :func:`torch.func.grad` (model in eval mode, BatchNorm uses its
running statistics), squared and averaged per group with one ``index_add``. The public reimplementation uses
BackPACK's exact diagonal GGN instead; for a softmax/CE head the GGN diagonal is the *expected* Fisher
(labels sampled from the model), while the empirical Fisher uses the true labels. Both are positive
semi-definite diagonal curvature estimates; the empirical Fisher needs no extra dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import prune

__all__ = ["prunable_weights", "group_fisher_diagonal", "fairprune_saliency", "fairprune_step", "run_fairprune"]


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
            g = torch.as_tensor(g).reshape(-1).long().to(device)
            if int(g.max()) >= num_groups:
                raise ValueError(f"group id {int(g.max())} >= num_groups={num_groups}.")
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


def run_fairprune(
    model: nn.Module,
    batches: Iterable[Any],
    evaluate: Callable[[nn.Module], float],
    num_groups: int,
    unprivileged: int,
    privileged: int | list[int],
    beta: float = 0.2,
    prune_ratio: float = 0.05,
    patience: int = 5,
    max_iterations: int = 20,
    **fisher_kwargs: Any,
) -> list[dict[str, float]]:
    """Iterate FairPrune: Fisher diagonals per group -> saliency -> prune ``prune_ratio`` -> ``evaluate``.

    ``evaluate(model)`` returns the bias metric to *minimise* (e.g. validation EOdds). Stops after ``patience``
    iterations without improvement (or ``max_iterations``) and restores the best iteration's masks (iteration 0
    = the unpruned model). Returns the history (``iteration``, ``metric``, ``pruned_fraction``).
    """
    batches = list(batches)
    best = float(evaluate(model))
    best_masks = _masks(model)
    history = [{"iteration": 0, "metric": best, "pruned_fraction": 0.0}]
    total = sum(m.weight.numel() for m in prunable_weights(model).values())
    stall = 0
    for it in range(1, max_iterations + 1):
        fisher, _ = group_fisher_diagonal(model, batches, num_groups, **fisher_kwargs)
        fairprune_step(model, fairprune_saliency(model, fisher, unprivileged, privileged, beta), prune_ratio)
        value = float(evaluate(model))
        zeros = sum(int((_get_mask(m) == 0).sum()) for m in prunable_weights(model).values())
        history.append({"iteration": it, "metric": value, "pruned_fraction": zeros / total})
        if value < best:
            best, best_masks, stall = value, _masks(model), 0
        else:
            stall += 1
            if stall >= patience:
                break
    _set_masks(model, best_masks)
    return history
