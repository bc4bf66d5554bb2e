# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi distillation loss: every sample is taught by the teacher of its own demographic group.

Masroor, Hassan et al., "Fair Distillation: Teaching Fairness from Biased Teachers in Medical Imaging"
(FairDi), arXiv 2411.11939. With student logits :math:`z_S`, the logits :math:`z_T^{a_i}` of the teacher of sample
:math:`i`'s group :math:`a_i`, temperature :math:`\\tau` and weight :math:`\\lambda`:

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
from monai.losses import DiceCELoss
from monai.utils import look_up_option

from monai_fair.methods.fairdi.fis import FairIdentityScalingLoss, per_sample_cross_entropy
from monai_fair.utils.validation import check_group_ids

__all__ = ["FairDistillationLoss", "FairDistillationSegLoss", "distillation_kl", "route_teacher_logits"]


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
