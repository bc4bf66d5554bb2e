# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi's stages as the bundles run them: the checkpoint each stage writes, and stage 0's loss.

Each stage is one MONAI trainer (``train#trainer`` of ``configs/train_<stage>.json`` in the FairDi bundles);
``configs/train.json`` runs the three in turn, and ``configs/evaluate.json`` scores any stage's checkpoint
(``eval_stage``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from monai.losses import DiceCELoss
from monai.utils import look_up_option

from monai_fair.methods.fairdi.fis import FairIdentityScalingLoss

__all__ = ["STAGE_CHECKPOINTS", "STAGE0_LOSSES", "stage_checkpoint", "stage0_loss"]

#: the checkpoint file each stage writes in the bundle's ``models`` folder
STAGE_CHECKPOINTS = {"baseline": "baseline.pt", "teachers": "teachers.pt", "student": "model.pt"}
#: stage-0 loss options per task: FIS, or the plain loss (ERM)
STAGE0_LOSSES = {"classification": ("fis", "ce"), "segmentation": ("fis", "dice_ce")}


def stage_checkpoint(ckpt_dir: str, stage: str = "student") -> str:
    """Path of ``stage``'s checkpoint in ``ckpt_dir`` (``"baseline"``, ``"teachers"`` or ``"student"``)."""
    return os.path.join(ckpt_dir, look_up_option(stage, STAGE_CHECKPOINTS))  # the mapping's value: the file name


def stage0_loss(
    name: str = "fis", task: str = "classification", fis: Mapping[str, Any] | None = None
) -> torch.nn.Module:
    """The loss of FairDi's stage 0: ``"fis"`` (:class:`FairIdentityScalingLoss` over per-sample cross-entropy,
    or Dice+CE per image for segmentation, with the keyword arguments ``fis``; called with the group) or the plain
    loss (``"ce"``: ``torch.nn.CrossEntropyLoss``; ``"dice_ce"``: MONAI's ``DiceCELoss``; called without it)."""
    task = look_up_option(task, tuple(STAGE0_LOSSES))
    name = look_up_option(name, STAGE0_LOSSES[task])
    if name == "fis":
        return FairIdentityScalingLoss(
            **{"base_loss": "ce" if task == "classification" else "dice_ce", **dict(fis or {})}
        )
    if name == "ce":
        return torch.nn.CrossEntropyLoss()
    return DiceCELoss(to_onehot_y=True, softmax=True)
