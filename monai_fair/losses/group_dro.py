# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group distributionally robust optimisation (GroupDRO; Sagawa et al., ICLR 2020), online version.

For groups ``k`` (by default the (attribute group, label) pairs, as in the paper), each step computes the mean loss
``L_k`` of the batch's samples in ``k`` and updates the adversarial group distribution

    q_k <- q_k * exp(eta * (L_k + C / sqrt(n_k)))  then  q <- q / sum(q),

then minimises ``sum_k q_k L_k`` (Algorithm 1 of the paper; ``C / sqrt(n_k)`` is its optional generalisation
adjustment, with ``n_k`` the training-set size of group ``k``). A group absent from the batch has ``L_k = 0``
(its weight only decays relatively), as in the authors' implementation. ``q`` is updated only in training mode.
The paper stresses strong L2 regularisation or early stopping; set them in the optimiser / the schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from monai_fair.losses.group_reweighted import per_sample_loss
from monai_fair.utils.validation import check_group_ids

__all__ = ["GroupDROLoss"]


class GroupDROLoss(torch.nn.Module):
    """GroupDRO objective ``sum_k q_k L_k`` with the exponentiated-gradient update of ``q`` (see the module docstring).

    Args:
        loss: unreduced base loss (or list of them), see :func:`monai_fair.losses.per_sample_loss`.
        num_groups: number of attribute groups ``G``.
        num_classes: when given, the DRO groups are (group, label) pairs, ``k = g * C + y`` (the paper's choice;
            classification); ``None``: attribute groups only (segmentation).
        step_size: ``eta`` (the paper uses 0.01).
        adjustment: ``C`` of the generalisation adjustment (0 disables it).
        group_counts: training-set size of each DRO group (``(K,)`` or the ``(G, C)`` table of counts), needed when
            ``adjustment > 0``.
        term_weights: factors of the losses of a list (see :func:`monai_fair.losses.per_sample_loss`).

    Call as ``loss(pred, target, group)``. The current ``q`` is the buffer ``group_weights``.
    """

    def __init__(
        self,
        loss: Callable | Sequence[Callable],
        num_groups: int,
        num_classes: int | None = None,
        step_size: float = 0.01,
        adjustment: float = 0.0,
        group_counts: torch.Tensor | Sequence | None = None,
        term_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if num_groups < 1 or (num_classes is not None and num_classes < 1):
            raise ValueError(f"num_groups and num_classes must be >= 1, got {num_groups}, {num_classes}.")
        if step_size < 0 or adjustment < 0:
            raise ValueError(f"step_size and adjustment must be >= 0, got {step_size}, {adjustment}.")
        self.loss = loss
        self.term_weights = term_weights
        self.num_groups = int(num_groups)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.step_size = float(step_size)
        k = self.num_groups * (self.num_classes or 1)
        adj = torch.zeros(k)
        if adjustment > 0:
            if group_counts is None:
                raise ValueError("adjustment > 0 needs group_counts (training-set size of each DRO group).")
            n = torch.as_tensor(group_counts, dtype=torch.float32).reshape(-1)
            if n.numel() != k:
                raise ValueError(f"group_counts needs {k} values (one per DRO group), got {n.numel()}.")
            adj = float(adjustment) / n.clamp_min(1).sqrt()
        self.register_buffer("adjustments", adj)
        self.register_buffer("group_weights", torch.full((k,), 1.0 / k))

    def dro_groups(self, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``(B,)`` DRO group index of each sample: ``g * C + y`` or ``g``."""
        g = check_group_ids(group, self.num_groups, name="group", device=target.device)
        if self.num_classes is None:
            return g
        y = target.reshape(target.shape[0], -1)
        y = y.argmax(1) if y.shape[1] > 1 else y[:, 0]
        return g * self.num_classes + y.long()

    def forward(self, pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        values = per_sample_loss(self.loss, pred, target, self.term_weights)
        k = self.dro_groups(target, group).to(values.device)
        size = self.group_weights.numel()
        sums = torch.zeros(size, dtype=values.dtype, device=values.device).index_add(0, k, values)
        counts = torch.bincount(k, minlength=size).to(values.dtype)
        group_loss = sums / counts.clamp_min(1)
        if self.training:
            with torch.no_grad():
                q = self.group_weights * torch.exp(self.step_size * (group_loss + self.adjustments.to(values)))
                self.group_weights.copy_(q / q.sum())
        return (self.group_weights.to(values) * group_loss).sum()
