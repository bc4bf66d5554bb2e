# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE's adversarial privacy objectives for the latent perturber and the attribute discriminator.

Xu et al., APPLE (arXiv 2403.05114), written in the FAAP form (Wang et al., CVPR 2022) moved to the latent:

* discriminator step (perturber fixed, ``f_p`` detached):  ``L_D = CE(D_p(f_p), a)``;
* perturber step (discriminator fixed)::

      L_G = L_seg(D_s(f_p), y) - beta * min(CE(D_p(f_p), a), cap) + alpha * C(D_p(f_p)) + gamma * R(G_p(f_o))

  with ``cap = log K`` by default (the ``-CE`` term is unbounded below), the confusion term ``C`` either
  ``log K - H(p)`` (``"entropy"``, FAAP's ``-H``) or ``CE(uniform, p) - log K`` (``"uniform_ce"``), both zero
  exactly when the discriminator's posterior ``p`` is uniform, and the perturbation penalty ``R`` either the
  mean squared perturbation ``mean(delta^2)`` (``"absolute"``) or the scale-free
  ``mean(delta^2) / mean(f_o^2)`` (``"relative"``, default, so one ``gamma`` suits any latent).

The segmentation term defaults to FairSeg's ``0.2 * CE + 0.8 * Dice`` (``DiceCELoss`` with those weights).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn

__all__ = ["AdversarialPrivacyLoss", "check_groups"]


def check_groups(group: torch.Tensor, num_groups: int, one_group_batch: str = "warn") -> bool:
    """Validate a batch's group ids; return whether the adversarial terms should be used for this batch.

    Args:
        group: ``(B,)`` integer group ids.
        num_groups: K.
        one_group_batch: what to do when the batch holds a single group (the discriminator then only learns the
            batch's prior and the adversarial gradient carries no between-group signal): ``"warn"`` (use the batch,
            warn), ``"skip"`` (warn and drop the adversarial terms for this batch), ``"error"`` (raise).

    Raises:
        ValueError: on ids outside ``0..K-1``, or a one-group batch with ``one_group_batch="error"``.
    """
    if one_group_batch not in ("warn", "skip", "error"):
        raise ValueError(f"one_group_batch must be 'warn', 'skip' or 'error', got {one_group_batch!r}.")
    if group.numel() == 0:
        raise ValueError("empty batch: no group ids.")
    lo, hi = int(group.min()), int(group.max())
    if lo < 0 or hi >= num_groups:
        raise ValueError(f"group ids must lie in 0..{num_groups - 1} (num_groups={num_groups}); got {lo}..{hi}.")
    if lo == hi:
        msg = (
            f"APPLE: the batch holds only group {lo}; the discriminator cannot learn between-group differences "
            "from it (shuffle the training data or enlarge the batch)."
        )
        if one_group_batch == "error":
            raise ValueError(msg)
        warnings.warn(
            msg + (" Adversarial terms skipped for this batch." if one_group_batch == "skip" else ""), stacklevel=2
        )
        return one_group_batch == "warn"
    return True


class AdversarialPrivacyLoss(nn.Module):
    """Perturber and discriminator objectives of APPLE (see the module docstring for the formulas).

    Args:
        num_groups: K, number of groups.
        seg_loss: ``seg_loss(pred, label)``; default ``DiceCELoss(softmax=True, to_onehot_y=True,
            lambda_dice=0.8, lambda_ce=0.2)`` for 2-channel logits and ``(B, 1, ...)`` integer labels.
        seg_weight: weight of the segmentation term.
        beta: weight of ``-min(CE, cap)`` (FAAP: 0.4 / 0.7 relative to the task term).
        alpha: weight of the confusion term (FAAP: 0.1 / 0.7).
        gamma: weight of the perturbation penalty.
        ce_cap: cap of the adversarial CE; ``None`` means ``log K``; ``float('inf')`` disables the cap.
        confusion: ``"entropy"`` or ``"uniform_ce"``.
        norm_penalty: ``"relative"`` or ``"absolute"``.
    """

    def __init__(
        self,
        num_groups: int,
        seg_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        seg_weight: float = 1.0,
        beta: float = 0.6,
        alpha: float = 0.15,
        gamma: float = 0.1,
        ce_cap: float | None = None,
        confusion: str = "entropy",
        norm_penalty: str = "relative",
    ) -> None:
        super().__init__()
        if int(num_groups) < 2:
            raise ValueError(f"num_groups must be >= 2, got {num_groups}.")
        if confusion not in ("entropy", "uniform_ce"):
            raise ValueError(f"confusion must be 'entropy' or 'uniform_ce', got {confusion!r}.")
        if norm_penalty not in ("relative", "absolute"):
            raise ValueError(f"norm_penalty must be 'relative' or 'absolute', got {norm_penalty!r}.")
        if min(seg_weight, beta, alpha, gamma) < 0:
            raise ValueError("loss weights must be >= 0.")
        self.num_groups = int(num_groups)
        self.seg_loss = (
            seg_loss
            if seg_loss is not None
            else DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.8, lambda_ce=0.2)
        )
        self.seg_weight, self.beta, self.alpha, self.gamma = float(seg_weight), float(beta), float(alpha), float(gamma)
        self.ce_cap = math.log(self.num_groups) if ce_cap is None else float(ce_cap)
        self.confusion, self.norm_penalty = confusion, norm_penalty

    def discriminator_loss(self, logits: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``L_D = CE(D_p(f_p), a)`` (mean over the batch, computed in float32)."""
        return F.cross_entropy(logits.float(), group.long())

    def confusion_term(self, logits: torch.Tensor) -> torch.Tensor:
        """``log K - H(p)`` or ``CE(uniform, p) - log K``, batch mean; zero iff ``p`` is uniform."""
        logp = F.log_softmax(logits.float(), dim=1)
        log_k = math.log(self.num_groups)
        if self.confusion == "entropy":
            return (log_k + (logp.exp() * logp).sum(1)).mean()
        return (-logp.mean(1) - log_k).mean()

    def perturbation_penalty(self, deltas: Sequence[torch.Tensor], latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean over sites of ``mean(delta^2)`` (absolute) or ``mean(delta^2) / mean(f_o^2)`` (relative)."""
        terms = []
        for d, f in zip(deltas, latents):
            sq = d.float().pow(2).mean()
            if self.norm_penalty == "relative":
                sq = sq / f.detach().float().pow(2).mean().clamp_min(1e-12)
            terms.append(sq)
        return torch.stack(terms).mean()

    def forward(
        self,
        pred: torch.Tensor,
        label: torch.Tensor,
        disc_logits: torch.Tensor | None,
        group: torch.Tensor,
        deltas: Sequence[torch.Tensor] = (),
        latents: Sequence[torch.Tensor] = (),
    ) -> dict[str, torch.Tensor]:
        """Perturber objective ``L_G`` and its parts.

        Args:
            pred: the frozen decoder's output on the perturbed latent.
            label: the segmentation target.
            disc_logits: ``D_p(f_p)`` (not detached); ``None`` drops the adversarial terms (one-group "skip").
            group: ``(B,)`` group ids.
            deltas, latents: ``G_p(f_o)`` and ``f_o`` per perturbed site (for the penalty).

        Returns:
            dict with ``loss`` (``L_G``), ``seg``, ``adv_ce`` (uncapped CE), ``confusion``, ``penalty``.
        """
        seg = self.seg_loss(pred, label).mean()
        zero = seg.new_zeros(())
        if disc_logits is not None:
            ce = F.cross_entropy(disc_logits.float(), group.long())
            conf = self.confusion_term(disc_logits)
        else:
            ce, conf = zero, zero
        pen = self.perturbation_penalty(deltas, latents) if len(deltas) else zero
        loss = self.seg_weight * seg - self.beta * ce.clamp(max=self.ce_cap) + self.alpha * conf + self.gamma * pen
        return {
            "loss": loss,
            "seg": seg.detach(),
            "adv_ce": ce.detach(),
            "confusion": conf.detach(),
            "penalty": pen.detach(),
        }
