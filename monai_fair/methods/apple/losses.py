# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE's two adversarial objectives: the perturber's (generator's) loss and the discriminator's loss.

Xu et al., APPLE (arXiv 2403.05114), in the form of FAAP (Wang et al., CVPR 2022) moved to the latent, with the
adversarial term chosen so that its minimum is an *uninformative* discriminator (maximal entropy / uniform
posterior, as in privacy-preserving adversarial representation learning), not a reversed one:

* discriminator (:class:`DiscriminatorLoss`, perturber fixed, ``f_p`` detached), group-balanced cross-entropy::

      L_D = (1 / |G|) sum_{k in G} mean_{i: a_i = k} CE(D_p(f_p)_i, k)

  (``G``: the groups present in the batch), so each group counts equally and predicting the majority is not a
  minimum on imbalanced data;
* perturber (:class:`PerturberLoss`, discriminator fixed)::

      L_G = w_seg * L_seg(D_s(f_p), y) + beta * P(D_p(f_p), a) + gamma * R(G_p(f_o))

  with the privacy term ``P`` the group-balanced mean of a divergence of the posterior ``p_i = softmax(D_p(f_p)_i)``
  from the uniform ``u = 1/K``:

  * ``"uniform_ce"`` (default): ``CE(u, p_i) - log K = KL(u || p_i) = -(1/K) sum_k log p_ik - log K``;
  * ``"entropy"``: ``log K - H(p_i) = KL(p_i || u)``;
  * ``"faap"``: FAAP's two-part term (Wang et al., CVPR 2022: fool the discriminator and make it uncertain), the
    form reviews of APPLE describe ("a two-part fairness constraint"): a capped negative cross-entropy of the true
    group plus an entropy term, offset so that it is >= 0::

        P_i = (log K - min(CE(p_i, a_i), log K)) + w_H (log K - H(p_i)),    w_H = faap_entropy_weight

    The cap at ``log K`` is our choice (FAAP's -CE is unbounded): it stops rewarding a *reversed* discriminator, so
    the entropy part then pulls to the uniform posterior, the unique minimum (0).

  All three are >= 0 and 0 exactly when ``p_i`` is uniform; a discriminator that ranks the groups in reverse has a
  confident, non-uniform posterior and is *not* a minimum (unlike ``-CE(D_p(f_p), a)``, which a reversed
  discriminator maximises). ``"uniform_ce"`` grows without bound as ``p_i`` concentrates, so ``beta`` keeps its
  effect however confident the discriminator is; the entropy form saturates at ``log K``.
  ``R`` is ``mean(delta^2) / mean(f_o^2)`` (``"relative"``, default, scale-free) or ``mean(delta^2)``
  (``"absolute"``), averaged over the perturbed sites.

The segmentation term defaults to FairSeg's ``0.2 * CE + 0.8 * Dice`` (MONAI ``DiceCELoss``). Both losses return
their terms under :class:`~monai_fair.methods.apple.AppleKeys`; neither holds a reference to an engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from monai.utils import look_up_option
from torch import nn

from monai_fair.methods.apple.keys import AppleKeys

__all__ = ["PerturberLoss", "DiscriminatorLoss", "PRIVACY_TERMS", "group_balanced_mean"]

#: forms of the perturber's privacy term
PRIVACY_TERMS = ("uniform_ce", "entropy", "faap")
_NORM_PENALTIES = ("relative", "absolute")


def group_balanced_mean(values: torch.Tensor, group: torch.Tensor, num_groups: int) -> torch.Tensor:
    """``(1 / |G|) sum_{k in G} mean_{i: group_i = k} values_i`` over the groups ``G`` present (vectorised).

    Args:
        values: ``(N,)`` per-sample values.
        group: ``(N,)`` integer group ids in ``0..num_groups-1``.
        num_groups: K.
    """
    g = group.long().to(values.device)
    sums = values.new_zeros(num_groups).index_add(0, g, values)
    counts = torch.bincount(g, minlength=num_groups).to(values.dtype)
    present = counts > 0
    return (sums[present] / counts[present]).mean()


def privacy_divergence(
    logits: torch.Tensor,
    form: str = "uniform_ce",
    group: torch.Tensor | None = None,
    entropy_weight: float = 0.25,
) -> torch.Tensor:
    """Per-sample privacy term of ``softmax(logits)`` (see the module docstring); ``(N,)``, 0 iff uniform.

    ``group`` (the true groups) is needed by the ``"faap"`` form only; ``entropy_weight`` is its ``w_H``.
    """
    logp = F.log_softmax(logits.float(), dim=1)
    log_k = math.log(logits.shape[1])
    neg_entropy = (logp.exp() * logp).sum(1)
    if form == "entropy":
        return log_k + neg_entropy
    if form == "faap":
        if group is None:
            raise ValueError("the 'faap' privacy term needs the true groups.")
        ce = -logp.gather(1, group.long().view(-1, 1).to(logp.device)).squeeze(1)
        return (log_k - ce.clamp(max=log_k)) + float(entropy_weight) * (log_k + neg_entropy)
    return -logp.mean(1) - log_k


class DiscriminatorLoss(nn.Module):
    """Group-balanced cross-entropy of the attribute discriminator, ``L_D`` (module docstring).

    The discriminator's target *is* the group, so the call is ``loss(logits, group)``.

    Args:
        num_groups: K (>= 2).
        balanced: average per group first (default); ``False`` is the plain batch-mean cross-entropy, which on
            imbalanced groups lets a discriminator that always predicts the majority look good.
    """

    def __init__(self, num_groups: int, balanced: bool = True) -> None:
        super().__init__()
        if int(num_groups) < 2:
            raise ValueError(f"num_groups must be >= 2, got {num_groups}.")
        self.num_groups = int(num_groups)
        self.balanced = bool(balanced)

    def forward(self, logits: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Return ``L_D`` (float32 scalar) for ``(B, K)`` logits and ``(B,)`` group ids."""
        ce = F.cross_entropy(logits.float(), group.long(), reduction="none")
        if not self.balanced:
            return ce.mean()
        return group_balanced_mean(ce, group, self.num_groups)


class PerturberLoss(nn.Module):
    """The perturber's (generator's) objective ``L_G`` of APPLE (module docstring for the formulas).

    Call as ``loss(pred, target, group, discriminator_logits, deltas, latents)``; returns a dict of 0-d tensors
    under :class:`~monai_fair.methods.apple.AppleKeys`: ``PERTURBER_LOSS`` (``L_G``, with its graph),
    ``SEGMENTATION_LOSS``, ``PRIVACY_LOSS`` and ``PERTURBATION_PENALTY`` (detached).

    Args:
        num_groups: K (>= 2).
        seg_loss: ``seg_loss(pred, target)``; default ``DiceCELoss(softmax=True, to_onehot_y=True,
            lambda_dice=0.8, lambda_ce=0.2)`` for C-channel logits and ``(B, 1, ...)`` integer labels.
        seg_weight: ``w_seg``.
        beta: weight of the privacy term (documented range 0-10, see the bundle README and the beta sweep in
            ``docs/benchmarks/apple.md``).
        gamma: weight of the perturbation penalty.
        privacy: ``"uniform_ce"``, ``"entropy"`` or ``"faap"``.
        norm_penalty: ``"relative"`` or ``"absolute"``.
        faap_entropy_weight: ``w_H`` of the ``"faap"`` term (default 0.25, the 0.1 : 0.4 ratio of entropy to
            cross-entropy weight in a public FAAP re-implementation).
    """

    def __init__(
        self,
        num_groups: int,
        seg_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        seg_weight: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.1,
        privacy: str = "uniform_ce",
        norm_penalty: str = "relative",
        faap_entropy_weight: float = 0.25,
    ) -> None:
        super().__init__()
        if int(num_groups) < 2:
            raise ValueError(f"num_groups must be >= 2, got {num_groups}.")
        if min(seg_weight, beta, gamma) < 0:
            raise ValueError(f"loss weights must be >= 0, got seg_weight={seg_weight}, beta={beta}, gamma={gamma}.")
        self.num_groups = int(num_groups)
        self.seg_loss = (
            seg_loss
            if seg_loss is not None
            else DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.8, lambda_ce=0.2)
        )
        self.seg_weight, self.beta, self.gamma = float(seg_weight), float(beta), float(gamma)
        self.privacy = look_up_option(privacy, PRIVACY_TERMS)
        self.norm_penalty = look_up_option(norm_penalty, _NORM_PENALTIES)
        if faap_entropy_weight < 0:
            raise ValueError(f"faap_entropy_weight must be >= 0, got {faap_entropy_weight}.")
        self.faap_entropy_weight = float(faap_entropy_weight)

    def privacy_term(self, logits: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Group-balanced mean divergence of the discriminator's posterior from uniform; 0 iff uniform."""
        div = privacy_divergence(logits, self.privacy, group, self.faap_entropy_weight)
        return group_balanced_mean(div, group, self.num_groups)

    def perturbation_penalty(self, deltas: Sequence[torch.Tensor], latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean over sites of ``mean(delta^2)`` (absolute) or ``mean(delta^2) / mean(f_o^2)`` (relative)."""
        sq = torch.stack([d.float().pow(2).mean() for d in deltas])
        if self.norm_penalty == "relative":
            sq = sq / torch.stack([f.detach().float().pow(2).mean() for f in latents]).clamp_min(1e-12)
        return sq.mean()

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        group: torch.Tensor,
        discriminator_logits: torch.Tensor | None = None,
        deltas: Sequence[torch.Tensor] = (),
        latents: Sequence[torch.Tensor] = (),
    ) -> dict[str, torch.Tensor]:
        """Return ``L_G`` and its terms.

        Args:
            pred: the frozen decoder's output on the perturbed latent.
            target: the segmentation target.
            group: ``(B,)`` group ids.
            discriminator_logits: ``D_p(f_p)`` (not detached, the discriminator frozen); ``None`` drops the privacy
                term (a one-group batch with ``one_group_batch="skip"``).
            deltas, latents: ``G_p(f_o)`` and ``f_o`` per perturbed site (for the penalty); empty: no penalty.
        """
        seg = self.seg_loss(pred, target).mean()
        zero = seg.new_zeros(())
        priv = self.privacy_term(discriminator_logits, group) if discriminator_logits is not None else zero
        pen = self.perturbation_penalty(deltas, latents) if len(deltas) else zero
        loss = self.seg_weight * seg + self.beta * priv + self.gamma * pen
        return {
            AppleKeys.PERTURBER_LOSS: loss,
            AppleKeys.SEGMENTATION_LOSS: seg.detach(),
            AppleKeys.PRIVACY_LOSS: priv.detach(),
            AppleKeys.PERTURBATION_PENALTY: pen.detach(),
        }
