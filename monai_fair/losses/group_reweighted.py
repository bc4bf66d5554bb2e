# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group loss reweighting: each sample's loss weighted by ``w[group, label]`` (e.g. ``1 / n(group, label)``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from monai_fair.utils.validation import check_group_ids

__all__ = ["GroupReweightedLoss", "per_sample_loss"]


def per_sample_loss(
    loss: Callable | Sequence[Callable],
    pred: torch.Tensor,
    target: torch.Tensor,
    term_weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """``(B,)`` per-sample values of an unreduced loss (or the weighted sum of several), averaging any non-batch
    dimensions.

    Args:
        loss: a loss built with ``reduction="none"`` (e.g. ``torch.nn.CrossEntropyLoss(reduction="none")``,
            ``monai.losses.DiceLoss(sigmoid=True, reduction="none")``), or a list of such losses whose per-sample
            values are added (e.g. Dice + BCE, the per-sample form of ``DiceCELoss``).
        pred, target: the loss inputs; dimension 0 is the batch.
        term_weights: one factor per loss of the list (default 1 each). Example: MONAI's
            ``DiceCELoss(to_onehot_y=True, softmax=True)`` per sample is ``[DiceLoss(..., reduction="none"),
            FocalLoss(gamma=0, to_onehot_y=True, use_softmax=True, reduction="none")]`` with factors ``[1, C]``
            (the focal loss with ``gamma = 0`` is the cross-entropy, spread over the ``C`` class maps).

    Raises:
        ValueError: when a loss returns a value without the batch dimension (it was built with a reduction).
    """
    losses = loss if isinstance(loss, Sequence) else (loss,)
    factors = [1.0] * len(losses) if term_weights is None else [float(w) for w in term_weights]
    if len(factors) != len(losses):
        raise ValueError(f"term_weights needs one factor per loss ({len(losses)}), got {len(factors)}.")
    total = None
    for fn, factor in zip(losses, factors):
        value = fn(pred, target)
        if value.ndim == 0 or value.shape[0] != pred.shape[0]:
            raise ValueError(
                f"{type(fn).__name__} returned shape {tuple(value.shape)} for a batch of {pred.shape[0]}: group losses "
                "need per-sample values; build it with reduction='none'."
            )
        value = factor * value.reshape(value.shape[0], -1).mean(1)
        total = value if total is None else total + value
    return total


class GroupReweightedLoss(torch.nn.Module):
    """Weighted empirical risk: ``L = sum_i w_i l_i / sum_i w_i`` with ``w_i = weights[g_i, y_i]``.

    With ``weights`` from :func:`monai_fair.data.group_balance_weights` (``w[g, c] = N / (K n(g, c))``) every
    (group, label) cell contributes equally to the expected loss: the loss-side twin of group-balanced resampling
    (MEDFAIR's reweighting baseline; Idrissi et al., CLeaR 2022). The batch normalisation by ``sum_i w_i`` is that
    of ``torch.nn.CrossEntropyLoss(weight=...)``.

    Args:
        loss: unreduced base loss (or list of them), see :func:`per_sample_loss`.
        weights: ``(G, C)`` table (cells = group, label) or ``(G,)`` / ``(G, 1)`` (groups only, e.g. segmentation).
        term_weights: factors of the losses of a list (see :func:`per_sample_loss`).

    Call as ``loss(pred, target, group)``; ``target`` holds class indices when ``weights`` has ``C > 1`` columns.
    """

    def __init__(
        self,
        loss: Callable | Sequence[Callable],
        weights: torch.Tensor | Sequence,
        term_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.term_weights = term_weights
        w = torch.as_tensor(weights, dtype=torch.float32)
        w = w[:, None] if w.ndim == 1 else w
        if w.ndim != 2 or bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
            raise ValueError(f"weights must be a non-negative (G, C) or (G,) table, got shape {tuple(w.shape)}.")
        self.register_buffer("weights", w)

    def sample_weights(self, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``(B,)`` weights of a batch: ``weights[group, label]`` (or ``weights[group, 0]`` for one column)."""
        g = check_group_ids(group, self.weights.shape[0], name="group", device=self.weights.device)
        if self.weights.shape[1] == 1:
            return self.weights[g, 0]
        y = target.reshape(target.shape[0], -1)
        y = y.argmax(1) if y.shape[1] > 1 else y[:, 0]  # one-hot or class indices
        return self.weights[g, y.long().to(g.device)]

    def forward(self, pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        values = per_sample_loss(self.loss, pred, target, self.term_weights)
        w = self.sample_weights(target, group).to(values)
        return (w * values).sum() / w.sum().clamp_min(torch.finfo(values.dtype).tiny)
