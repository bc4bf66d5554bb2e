# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi's losses: the Fair Identity Scaling (FIS) loss of its stage 0 and supervised term, and the distillation
loss of its student.

**FIS** (Luo et al., FairVision, arXiv 2310.02492) re-weights every sample's loss :math:`\\ell_i` of a batch
:math:`B` by a mix of an *individual* weight and a *group* weight:

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

**Distillation** (Masroor, Hassan et al., "Fair Distillation: Teaching Fairness from Biased Teachers in Medical
Imaging", FairDi, arXiv 2411.11939). With student logits :math:`z_S`, the logits :math:`z_T^{a_i}` of the teacher
of sample :math:`i`'s group :math:`a_i`, temperature :math:`\\tau` and weight :math:`\\lambda`:

.. math::

    L = \\lambda\\, \\tau^2\\, \\frac{1}{N} \\sum_{i, v}
        \\operatorname{KL}\\big(\\sigma(z_{T,iv}^{a_i}/\\tau) \\,\\|\\, \\sigma(z_{S,iv}/\\tau)\\big)
        + (1-\\lambda)\\, L_{sup}(z_S, y, a)

where :math:`v` runs over voxels for segmentation (per-voxel KL averaged over the :math:`N` = batch x voxels
positions; classification has one position per sample), :math:`\\sigma` the softmax over classes, and
:math:`L_{sup}` is cross-entropy, the FIS loss
(:class:`monai_fair.methods.fairdi.FairIdentityScalingLoss`), Dice+CE (segmentation) or any loss. KL and log-softmax are
computed in fp32 with autocast disabled, so the loss is stable under AMP.

The teacher logits can be given already routed, ``(B, C, ...)`` (as :class:`monai_fair.methods.fairdi.GroupTeachers`
and the cached outputs produce them), or for all K teachers, ``(K, B, C, ...)``, in which case each sample takes
the slice of its own group's teacher.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
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
    "FairDistillationLoss",
    "FairDistillationSegLoss",
    "distillation_kl",
    "route_teacher_logits",
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


def route_teacher_logits(teacher_logits: torch.Tensor, group: torch.Tensor, student_ndim: int) -> torch.Tensor:
    """Select each sample's own-group teacher output.

    Args:
        teacher_logits: ``(B, C, ...)`` (already routed, returned as is) or ``(K, B, C, ...)`` for all teachers.
        group: (B,) group ids.
        student_ndim: number of dimensions of the student logits (``B, C, ...``).
    """
    if teacher_logits.dim() == student_ndim:
        return teacher_logits
    if teacher_logits.dim() != student_ndim + 1:
        raise ValueError(
            f"teacher logits must be (B, C, ...) or (K, B, C, ...) for student logits with {student_ndim} dims, "
            f"got shape {tuple(teacher_logits.shape)}."
        )
    k, b = teacher_logits.shape[:2]
    group = check_group_ids(group, k, name="group", num_samples=b, device=teacher_logits.device)
    return teacher_logits[group, torch.arange(b, device=teacher_logits.device)]


def distillation_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0, scale_by_t2: bool = True
) -> torch.Tensor:
    """``tau^2 * mean_{i,v} KL(softmax(t/tau) || softmax(s/tau))`` over channel dim 1, in fp32."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} differ.")
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
        log_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()
    return kl * (temperature**2) if scale_by_t2 else kl


class FairDistillationLoss(torch.nn.Module):
    """FairDi student loss (see module docstring): own-group teacher KL + supervised term.

    Called as ``loss(pred, target, group, teacher_logits)``; :class:`monai_fair.methods.fairdi.FairDiStudentTrainer`
    supplies ``group`` and ``teacher_logits`` (cached or online).

    Args:
        temperature: distillation temperature tau (FairDi reimplementation default 1.5).
        lambda_kd: weight lambda of the distillation term; ``1 - lambda`` weights the supervised term.
        supervised: ``"fis"`` (default), ``"ce"``, ``"dice_ce"`` (MONAI's ``DiceCELoss``) or a loss
            module/callable; a callable taking ``(pred, target, group)`` needs ``supervised_takes_group=True`` (or is
            a ``FairIdentityScalingLoss``).
        scale_by_t2: multiply the KL term by tau^2 (Hinton et al.), default True.
        fis: keyword arguments of :class:`monai_fair.methods.fairdi.FairIdentityScalingLoss` when
            ``supervised="fis"`` (``c``, temperatures, ``group_distance``, ``distance_scale``, ...).
        supervised_takes_group: whether a callable ``supervised`` takes ``group`` as third argument.
    """

    dense_default = "ce"

    def __init__(
        self,
        temperature: float = 1.5,
        lambda_kd: float = 0.95,
        supervised: str | Callable = "fis",
        scale_by_t2: bool = True,
        fis: Mapping[str, Any] | None = None,
        supervised_takes_group: bool | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"distillation temperature must be > 0, got {temperature}.")
        if not 0.0 <= lambda_kd <= 1.0:
            raise ValueError(f"lambda_kd must be in [0, 1], got {lambda_kd}.")
        self.temperature = float(temperature)
        self.lambda_kd = float(lambda_kd)
        self.scale_by_t2 = scale_by_t2
        takes_group = supervised_takes_group
        if isinstance(supervised, str):
            name = look_up_option(supervised, ("fis", "ce", "dice_ce"))
            if name == "fis":
                supervised = FairIdentityScalingLoss(**{"base_loss": self.dense_default, **dict(fis or {})})
            elif name == "ce":
                supervised = _CrossEntropy()
            else:
                supervised = DiceCELoss(to_onehot_y=True, softmax=True)
        if takes_group is None:
            takes_group = isinstance(supervised, FairIdentityScalingLoss)
        self.supervised = supervised
        self.supervised_takes_group = takes_group

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor, teacher_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        if teacher_logits is None:
            raise ValueError("FairDistillationLoss needs teacher logits (cached 'teacher_logits' or online teachers).")
        group = check_group_ids(group, name="group", num_samples=pred.shape[0], device=pred.device)
        teacher = route_teacher_logits(teacher_logits.to(pred.device), group, pred.dim())
        kd = distillation_kl(pred, teacher, self.temperature, self.scale_by_t2)
        if self.lambda_kd >= 1.0:
            return self.lambda_kd * kd
        with torch.autocast(device_type=pred.device.type, enabled=False):
            if self.supervised_takes_group:
                sup = self.supervised(pred.float(), target, group)
            else:
                sup = self.supervised(pred.float(), target)
        return self.lambda_kd * kd + (1.0 - self.lambda_kd) * sup


class FairDistillationSegLoss(FairDistillationLoss):
    """Segmentation form of :class:`FairDistillationLoss` for 2D/3D class maps ``(B, C, *spatial)``.

    Per-voxel KL to the own-group teacher's class map plus a Dice+CE supervised term (``supervised="dice_ce"``,
    default) or FIS over per-image Dice+CE losses (``supervised="fis"``). ``target`` is a class-index map
    ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
    """

    dense_default = "dice_ce"

    def __init__(
        self, temperature: float = 1.5, lambda_kd: float = 0.5, supervised: str | Callable = "dice_ce", **kwargs
    ) -> None:
        super().__init__(temperature=temperature, lambda_kd=lambda_kd, supervised=supervised, **kwargs)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor, teacher_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        if pred.dim() not in (4, 5):
            raise ValueError(f"segmentation logits must be (B, C, H, W) or (B, C, D, H, W), got {tuple(pred.shape)}.")
        return super().forward(pred, target, group, teacher_logits)


class _CrossEntropy(torch.nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return per_sample_cross_entropy(pred, target).mean()
