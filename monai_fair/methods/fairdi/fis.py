# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fair Identity Scaling (FIS) loss (Luo et al., FairVision, arXiv 2310.02492), as used by FairDi's supervised term.

FIS re-weights every sample's loss :math:`\\ell_i` of a batch :math:`B` by a mix of an *individual* weight and a
*group* weight:

.. math::

    L_{FIS} = \\frac{1}{|B|} \\sum_i \\big[(1-c)\\, s^I_i + c\\, s^G_{a_i}\\big]\\, \\ell_i, \\qquad
    s^I_i = |B| \\operatorname{softmax}_i(\\ell_i / T_I), \\qquad
    s^G_a = |A_B| \\operatorname{softmax}_{a \\in A_B}\\big(d_a / T_G\\big)

where :math:`a_i` is the group of sample :math:`i` and :math:`A_B` the groups *present in the batch* (absent
groups get no weight). Both weights have mean 1 (``normalize=True``), so equal losses give plain averaging and the
loss stays on the scale of the base loss; ``normalize=False`` drops the factors :math:`|B|` and :math:`|A_B|`
(FairVision's code, whose loss is then :math:`1/|B|` smaller). The group distance :math:`d_a` compares the
batch's loss distribution with group :math:`a`'s, from the two empirical CDFs on the sorted batch losses
(exact, for all groups at once):

* ``group_distance="wasserstein"`` (FairVision): :math:`W_1 = \\int |F_B(x) - F_a(x)|\\,dx`. It is *unsigned*:
  a group whose losses are lower than the batch's is up-weighted as much as one whose losses are higher, and in a
  batch dominated by one group the other group is always the farther one, whichever of the two does worse;
* ``group_distance="excess"`` (default): the one-sided :math:`\\int \\max(F_B(x) - F_a(x), 0)\\,dx`, the part of
  group :math:`a`'s loss distribution that lies *above* the batch's (0 for a group that does at least as well as
  the batch). Only under-performing groups are up-weighted, which is FIS's stated aim.

``distance_scale`` sets the unit of :math:`d_a`: ``"absolute"`` (FairVision) keeps loss units, so at
:math:`T_G = 1` a typical cross-entropy gap of 0.1-0.3 nats gives the worse group only 10-35 % more weight per
sample (on held-out data the minority's share of the loss weight moved from 19.5 % to 22 %); ``"relative"``
(default) divides :math:`d_a` by the batch's mean loss, so :math:`T_G` is unit-free and a group whose losses exceed
the batch's by the batch mean gets :math:`e^{1/T_G}` times the weight. The weights carry no gradient.

Calibration: the individual weight :math:`e^{\\ell_i / T_I}` tilts the risk towards misclassified samples (an
exponentially tilted risk, not a proper scoring rule), so an FIS-trained model's scores are pulled towards the
decision boundary: AUC is kept while accuracy, TPR and FPR at the default threshold 0.5 move. Raise
``individual_temperature`` (weaker tilt) or choose the threshold on validation data; see the FairDi bundles' docs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.utils import look_up_option

from monai_fair.utils.validation import check_group_ids

__all__ = [
    "FairIdentityScalingLoss",
    "compute_fis_weights",
    "wasserstein_1d_to_groups",
    "per_sample_cross_entropy",
    "per_sample_dice_ce",
    "FIS_GROUP_DISTANCES",
    "FIS_DISTANCE_SCALES",
]

#: options of ``group_distance``
FIS_GROUP_DISTANCES = ("excess", "wasserstein")
#: options of ``distance_scale``
FIS_DISTANCE_SCALES = ("relative", "absolute")
_BASE_LOSSES = ("ce", "dice_ce")


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


_DICE = DiceLoss(softmax=True, reduction="none")


def per_sample_dice_ce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MONAI's Dice loss (softmax, all channels) plus cross-entropy of each image: ``(B, C, *spatial) -> (B,)``.

    Its batch mean equals ``monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)`` (per-image Dice, mean over
    channels and images, plus the voxel-mean cross-entropy).
    """
    pred = pred.float()
    idx = _class_target(pred, target)
    onehot = F.one_hot(idx, pred.shape[1]).movedim(-1, 1).to(pred.dtype)
    dice = _DICE(pred, onehot).reshape(pred.shape[0], -1).mean(dim=1)
    return dice + per_sample_cross_entropy(pred, idx)


def wasserstein_1d_to_groups(
    values: torch.Tensor, group: torch.Tensor, num_groups: int, one_sided: bool = False
) -> torch.Tensor:
    """1-D Wasserstein-1 distance between the distribution of ``values`` and that of each group's subset.

    With the empirical CDFs :math:`F_B` (all values) and :math:`F_a` (group :math:`a`) evaluated on the sorted
    values :math:`x_1 \\le \\dots \\le x_n`: :math:`W_1 = \\sum_j |F_B(x_j) - F_a(x_j)|\\,(x_{j+1} - x_j)`;
    ``one_sided=True`` keeps only :math:`\\max(F_B - F_a, 0)`, the mass of group :math:`a` lying above the whole
    distribution.

    Args:
        values: (B,) values (e.g. per-sample losses).
        group: (B,) integer group ids.
        num_groups: K.
        one_sided: the one-sided ("excess") distance.

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
    diff = cdf_all[:-1].unsqueeze(1) - cdf_groups[:-1]
    diff = diff.clamp_min(0) if one_sided else diff.abs()
    dist = (diff * gaps).sum(0)
    return torch.where(counts > 0, dist, torch.full_like(dist, float("nan")))


def compute_fis_weights(
    losses: torch.Tensor,
    group: torch.Tensor,
    num_groups: int | None = None,
    c: float = 0.5,
    individual_temperature: float = 1.0,
    group_temperature: float = 1.0,
    normalize: bool = True,
    group_distance: str = "excess",
    distance_scale: str = "relative",
) -> torch.Tensor:
    """The FIS weight ``(1-c) s^I_i + c s^G_{a_i}`` of each sample (see the module docstring); no gradient.

    Args:
        losses: (B,) per-sample losses.
        group: (B,) group ids.
        num_groups: number of groups K (default: ``max(group) + 1``).
        c: fusion weight of the group term (0: individual only, 1: group only).
        individual_temperature, group_temperature: softmax temperatures ``T_I``, ``T_G``.
        normalize: rescale the softmax weights to mean 1.
        group_distance: ``"excess"`` (one-sided, default) or ``"wasserstein"`` (FairVision, unsigned).
        distance_scale: ``"relative"`` (distance / batch mean loss, default) or ``"absolute"`` (loss units).
    """
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"FIS fusion weight c must be in [0, 1], got {c}.")
    group_distance = look_up_option(group_distance, FIS_GROUP_DISTANCES)
    distance_scale = look_up_option(distance_scale, FIS_DISTANCE_SCALES)
    losses = losses.detach().float().reshape(-1)
    group = check_group_ids(group, num_groups, name="FIS group", num_samples=losses.numel(), device=losses.device)
    if num_groups is None:
        num_groups = int(group.max()) + 1 if group.numel() else 1
    n = losses.numel()
    s_ind = torch.softmax(losses / individual_temperature, dim=0)
    dist = wasserstein_1d_to_groups(losses, group, num_groups, one_sided=group_distance == "excess")
    if distance_scale == "relative":
        dist = dist / losses.mean().clamp_min(1e-8)
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
    the individual weights fused with a constant group weight. Computed in fp32 (also under AMP).

    Args:
        c: fusion weight of the group weights (FairVision default 0.5).
        individual_temperature: softmax temperature of the individual weights.
        group_temperature: softmax temperature of the group weights.
        base_loss: ``"ce"`` (classification; per-voxel CE averaged per image for dense outputs),
            ``"dice_ce"`` (segmentation) or a callable ``(pred, target) -> (B,)``.
        num_groups: K, to validate group ids (optional).
        normalize: weights with mean 1 (default) or FairVision's softmax weights (loss ``1/B`` smaller).
        group_distance: ``"excess"`` (default) or ``"wasserstein"`` (FairVision); see the module docstring.
        distance_scale: ``"relative"`` (default) or ``"absolute"`` (FairVision).

    FairVision's own form is ``group_distance="wasserstein", distance_scale="absolute"`` (with its Sinkhorn
    distance replaced by the exact 1-D Wasserstein-1 distance).

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
        group_distance: str = "excess",
        distance_scale: str = "relative",
    ) -> None:
        super().__init__()
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"FIS fusion weight c must be in [0, 1], got {c}.")
        if individual_temperature <= 0 or group_temperature <= 0:
            raise ValueError("FIS temperatures must be > 0.")
        if isinstance(base_loss, str):
            base_loss = {"ce": per_sample_cross_entropy, "dice_ce": per_sample_dice_ce}[
                look_up_option(base_loss, _BASE_LOSSES)
            ]
        self.base_loss = base_loss
        self.c = c
        self.individual_temperature = individual_temperature
        self.group_temperature = group_temperature
        self.num_groups = num_groups
        self.normalize = normalize
        self.group_distance = look_up_option(group_distance, FIS_GROUP_DISTANCES)
        self.distance_scale = look_up_option(distance_scale, FIS_DISTANCE_SCALES)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            losses = self.base_loss(pred.float(), target).reshape(-1)
            if losses.numel() != pred.shape[0]:
                msg = f"FIS base_loss must return one loss per sample ({pred.shape[0]}), got {tuple(losses.shape)}."
                raise ValueError(msg)
            w = compute_fis_weights(
                losses,
                group,
                self.num_groups,
                self.c,
                self.individual_temperature,
                self.group_temperature,
                self.normalize,
                self.group_distance,
                self.distance_scale,
            )
            return (w * losses).mean()
