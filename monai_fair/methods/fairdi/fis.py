# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fair Identity Scaling (FIS) loss (Luo et al., FairVision, arXiv 2310.02492), as used by FairDi's supervised term.

FIS re-weights every sample's loss :math:`\\ell_i` of a batch :math:`B` by a mix of an *individual* weight and a
*group* weight:

.. math::

    L_{FIS} = \\frac{1}{B} \\sum_i \\big[(1-c)\\, s^I_i + c\\, s^G_{a_i}\\big]\\, \\ell_i, \\qquad
    s^I_i = \\operatorname{softmax}_i(\\ell_i / T_I), \\qquad
    s^G_a = \\operatorname{softmax}_{a \\in A_B}\\big(W_1(\\{\\ell\\}_B, \\{\\ell\\}_{B_a}) / T_G\\big)

where :math:`a_i` is the group of sample :math:`i`, :math:`A_B` the groups *present in the batch* (absent groups get
no weight), and :math:`W_1` the 1-D Wasserstein distance between the empirical loss distribution of the batch and
that of group :math:`a`. The 1-D distance is computed exactly from the two empirical CDFs on the sorted batch
losses, :math:`W_1 = \\sum_j |F_B(x_j) - F_a(x_j)|\\,(x_{j+1} - x_j)`, for all groups at once (no loop).

With ``normalize=True`` (default) the softmax weights are rescaled to mean 1 (``s^I * B`` and
``s^G * |A_B|``), so that equal losses give plain averaging and the loss stays on the scale of the base loss;
``normalize=False`` gives the literal formula above (whose scale is ``1/B`` smaller).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "FairIdentityScalingLoss",
    "compute_fis_weights",
    "wasserstein_1d_to_groups",
    "per_sample_cross_entropy",
    "per_sample_dice_ce",
    "check_group",
]


def check_group(group: torch.Tensor, batch_size: int, num_groups: int | None = None) -> torch.Tensor:
    """Return ``group`` as a 1-D long tensor of length ``batch_size``; raise a clear error otherwise."""
    if not isinstance(group, torch.Tensor):
        group = torch.as_tensor(group)
    group = group.reshape(-1)
    if group.numel() != batch_size:
        raise ValueError(f"group has {group.numel()} entries but the batch has {batch_size} samples.")
    if group.is_floating_point():
        if torch.isnan(group).any() or (group != group.round()).any():
            raise ValueError(f"group must hold integer ids, got {group.tolist()}.")
    group = group.long()
    if group.numel() and int(group.min()) < 0:
        raise ValueError(f"group ids must be >= 0, got {int(group.min())}.")
    if num_groups is not None and group.numel() and int(group.max()) >= num_groups:
        raise ValueError(f"unknown group id {int(group.max())}: only {num_groups} groups (0..{num_groups - 1}).")
    return group


def _class_target(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Turn a class-index (B,), (B,1,...) or one-hot (B,C,...) target into class indices of shape (B, ...)."""
    if target.shape == pred.shape and pred.shape[1] > 1 and target.is_floating_point():
        return target.argmax(dim=1)
    if target.dim() == pred.dim() and target.shape[1] == 1:
        target = target[:, 0]
    return target.reshape((pred.shape[0],) + tuple(pred.shape[2:])).long()


def per_sample_cross_entropy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each sample, averaged over its voxels if any: ``(B, C, ...) -> (B,)``."""
    ce = F.cross_entropy(pred.float(), _class_target(pred, target), reduction="none")
    return ce.reshape(pred.shape[0], -1).mean(dim=1)


def per_sample_dice_ce(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Soft Dice loss (softmax, all channels) plus cross-entropy of each image: ``(B, C, *spatial) -> (B,)``."""
    pred = pred.float()
    idx = _class_target(pred, target)
    prob = torch.softmax(pred, dim=1)
    onehot = F.one_hot(idx, pred.shape[1]).movedim(-1, 1).to(prob.dtype)
    dims = tuple(range(2, pred.dim()))
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    return dice.mean(dim=1) + per_sample_cross_entropy(pred, idx)


def wasserstein_1d_to_groups(values: torch.Tensor, group: torch.Tensor, num_groups: int) -> torch.Tensor:
    """1-D Wasserstein-1 distance between the distribution of ``values`` and that of each group's subset.

    Args:
        values: (B,) values (e.g. per-sample losses).
        group: (B,) integer group ids.
        num_groups: K.

    Returns:
        (K,) distances; ``NaN`` for groups without samples.
    """
    order = torch.argsort(values)
    x = values[order]
    onehot = F.one_hot(group[order], num_groups).to(values.dtype)  # (B, K)
    counts = onehot.sum(0)
    n = values.numel()
    cdf_all = torch.arange(1, n + 1, device=values.device, dtype=values.dtype) / n  # (B,)
    cdf_groups = onehot.cumsum(0) / counts.clamp_min(1)  # (B, K)
    gaps = (x[1:] - x[:-1]).unsqueeze(1)  # (B-1, 1)
    dist = ((cdf_all[:-1].unsqueeze(1) - cdf_groups[:-1]).abs() * gaps).sum(0)
    return torch.where(counts > 0, dist, torch.full_like(dist, float("nan")))


def compute_fis_weights(
    losses: torch.Tensor,
    group: torch.Tensor,
    num_groups: int | None = None,
    c: float = 0.5,
    individual_temperature: float = 1.0,
    group_temperature: float = 1.0,
    normalize: bool = True,
) -> torch.Tensor:
    """The FIS weight ``(1-c) s^I_i + c s^G_{a_i}`` of each sample (see module docstring); no gradient.

    Args:
        losses: (B,) per-sample losses.
        group: (B,) group ids.
        num_groups: number of groups K (default: ``max(group) + 1``).
        c: fusion weight of the group term (0: individual only, 1: group only).
        individual_temperature, group_temperature: softmax temperatures ``T_I``, ``T_G``.
        normalize: rescale the softmax weights to mean 1 (see module docstring).
    """
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"FIS fusion weight c must be in [0, 1], got {c}.")
    losses = losses.detach().float().reshape(-1)
    group = check_group(group, losses.numel(), num_groups)
    if num_groups is None:
        num_groups = int(group.max()) + 1 if group.numel() else 1
    n = losses.numel()
    s_ind = torch.softmax(losses / individual_temperature, dim=0)
    dist = wasserstein_1d_to_groups(losses, group, num_groups)
    present = ~torch.isnan(dist)
    logits_g = torch.where(present, dist / group_temperature, torch.full_like(dist, float("-inf")))
    s_grp = torch.softmax(logits_g, dim=0)  # absent groups get exactly 0
    if normalize:
        s_ind = s_ind * n
        s_grp = s_grp * present.sum()
    return (1.0 - c) * s_ind + c * s_grp[group]


class FairIdentityScalingLoss(torch.nn.Module):
    """Fair Identity Scaling loss: per-sample loss re-weighted by individual and group weights.

    Called as ``loss(pred, target, group)`` (e.g. by :class:`monai_fair.engines.GroupSupervisedTrainer` with
    ``loss_takes_group=True``). Only the groups present in the batch take part; a batch with one group reduces to
    the individual weights fused with a constant group weight. Computed in fp32 (also under AMP). The weights
    carry no gradient (they re-weight; the gradient flows through the per-sample losses).

    Args:
        c: fusion weight of the group weights (FairVision default 0.5).
        individual_temperature: softmax temperature of the individual weights.
        group_temperature: softmax temperature of the group weights.
        base_loss: ``"ce"`` (classification; per-voxel CE averaged per image for dense outputs),
            ``"dice_ce"`` (segmentation) or a callable ``(pred, target) -> (B,)``.
        num_groups: K, to validate group ids (optional).
        normalize: weights with mean 1 (default) or the literal softmax weights.

    Reference: Luo et al., "FairVision: Equitable Deep Learning for Eye Disease Screening via Fair Identity Scaling",
    arXiv 2310.02492; used by Masroor, Hassan et al., "Fair Distillation" (FairDi), arXiv 2411.11939.
    """

    def __init__(
        self,
        c: float = 0.5,
        individual_temperature: float = 1.0,
        group_temperature: float = 1.0,
        base_loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "ce",
        num_groups: int | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"FIS fusion weight c must be in [0, 1], got {c}.")
        if individual_temperature <= 0 or group_temperature <= 0:
            raise ValueError("FIS temperatures must be > 0.")
        if isinstance(base_loss, str):
            table = {"ce": per_sample_cross_entropy, "dice_ce": per_sample_dice_ce}
            if base_loss not in table:
                raise ValueError(f"unknown FIS base_loss '{base_loss}', expected one of {sorted(table)} or a callable.")
            base_loss = table[base_loss]
        self.base_loss = base_loss
        self.c = c
        self.individual_temperature = individual_temperature
        self.group_temperature = group_temperature
        self.num_groups = num_groups
        self.normalize = normalize

    def forward(self, pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            losses = self.base_loss(pred.float(), target).reshape(-1)
            if losses.numel() != pred.shape[0]:
                msg = f"FIS base_loss must return one loss per sample ({pred.shape[0]}), got {tuple(losses.shape)}."
                raise ValueError(msg)
            w = compute_fis_weights(
                losses,
                group.to(pred.device),
                self.num_groups,
                self.c,
                self.individual_temperature,
                self.group_temperature,
                self.normalize,
            )
            return (w * losses).mean()
