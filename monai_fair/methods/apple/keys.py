# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The names APPLE's engine uses: output keys and iteration events (the one place where they are defined).

Modelled on MONAI's ``AdversarialKeys`` / ``AdversarialIterationEvents`` (``monai.engines.AdversarialTrainer``):
the perturber ``G_p`` plays the generator and the attribute discriminator ``D_p`` the discriminator. The losses
(:mod:`.losses`) return their terms under these keys, :class:`~monai_fair.methods.apple.AppleTrainer` puts them
in ``engine.state.output`` and fires these events, and :func:`apple_loss_terms` turns an output into the scalars
a ``StatsHandler`` logs.
"""

from __future__ import annotations

from typing import Any

import torch
from ignite.engine import EventEnum
from monai.utils.enums import StrEnum

__all__ = ["AppleKeys", "AppleIterationEvents", "APPLE_LOSS_TERMS", "apple_loss_terms"]


class AppleKeys(StrEnum):
    """Keys of ``engine.state.output`` (per iteration) and ``engine.state.metrics`` (per epoch) of APPLE.

    * ``PERTURBER_LOSS``: ``L_G`` (:class:`~monai_fair.methods.apple.PerturberLoss`), also under ``"loss"``;
    * ``SEGMENTATION_LOSS``: its segmentation term ``L_seg(D_s(f_p), y)``;
    * ``PRIVACY_LOSS``: its adversarial term, the group-balanced divergence of ``D_p``'s posterior from uniform;
    * ``PERTURBATION_PENALTY``: its penalty on ``G_p(f_o)``;
    * ``DISCRIMINATOR_LOSS``: ``L_D`` (:class:`~monai_fair.methods.apple.DiscriminatorLoss`) of the last
      discriminator step of the iteration;
    * ``DISCRIMINATOR_LOGITS``: ``D_p(f_p)`` on the batch *before* the discriminator's updates of this iteration
      (detached), the input of the epoch metrics below;
    * ``DISCRIMINATOR_AUC``, ``DISCRIMINATOR_BALANCED_ACCURACY``: per epoch (``engine.state.metrics``), how well the
      discriminator recovers the group from the perturbed latent (ROC AUC, one-vs-rest macro for K > 2; mean
      per-group recall). Raw accuracy is never logged: on imbalanced groups it rewards predicting the majority.
    """

    PERTURBER_LOSS = "perturber_loss"
    SEGMENTATION_LOSS = "segmentation_loss"
    PRIVACY_LOSS = "privacy_loss"
    PERTURBATION_PENALTY = "perturbation_penalty"
    DISCRIMINATOR_LOSS = "discriminator_loss"
    DISCRIMINATOR_LOGITS = "discriminator_logits"
    DISCRIMINATOR_AUC = "discriminator_auc"
    DISCRIMINATOR_BALANCED_ACCURACY = "discriminator_balanced_accuracy"


class AppleIterationEvents(EventEnum):
    """Events of one APPLE iteration, in firing order (MONAI's ``IterationEvents`` fire too: ``FORWARD_COMPLETED``
    after the perturbed forward pass, ``LOSS_COMPLETED`` / ``BACKWARD_COMPLETED`` / ``MODEL_COMPLETED`` for the
    perturber, so MONAI and monai-fair handlers written for ``SupervisedTrainer`` keep working)."""

    PERTURBER_FORWARD_COMPLETED = "perturber_forward_completed"
    DISCRIMINATOR_LOSS_COMPLETED = "discriminator_loss_completed"
    DISCRIMINATOR_BACKWARD_COMPLETED = "discriminator_backward_completed"
    DISCRIMINATOR_MODEL_COMPLETED = "discriminator_model_completed"
    PERTURBER_LOSS_COMPLETED = "perturber_loss_completed"
    PERTURBER_BACKWARD_COMPLETED = "perturber_backward_completed"
    PERTURBER_MODEL_COMPLETED = "perturber_model_completed"


#: the per-iteration scalars of APPLE, in log order
APPLE_LOSS_TERMS = (
    AppleKeys.PERTURBER_LOSS,
    AppleKeys.SEGMENTATION_LOSS,
    AppleKeys.PRIVACY_LOSS,
    AppleKeys.PERTURBATION_PENALTY,
    AppleKeys.DISCRIMINATOR_LOSS,
)


def apple_loss_terms(output: Any) -> dict[str, float]:
    """``{name: value}`` of the loss terms in an APPLE trainer output (batch dict or MONAI's decollated list).

    For ``StatsHandler(output_transform=...)`` / ``TensorBoardStatsHandler``; terms absent from the output are left
    out.
    """
    out = output[0] if isinstance(output, (list, tuple)) else output
    return {str(k): float(torch.as_tensor(out[k]).float()) for k in APPLE_LOSS_TERMS if k in out}
