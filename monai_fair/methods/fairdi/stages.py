# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi's stages as the bundles run them: the checkpoint each stage writes, and stage 0's loss.

Each stage is one MONAI trainer (``train#trainer`` of ``configs/train_<stage>.json`` in the FairDi bundles);
``configs/train.json`` runs the three in turn, and ``configs/evaluate.json`` scores any stage's checkpoint
(``eval_stage``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.utils import look_up_option

from monai_fair.methods.fairdi.losses import FairIdentityScalingLoss
from monai_fair.utils.validation import check_group_ids

__all__ = [
    "STAGE_CHECKPOINTS",
    "STAGE0_LOSSES",
    "stage_checkpoint",
    "stage0_loss",
    "teacher_eligible_groups",
    "group_balanced_sampler",
    "STUDENT_INITS",
    "student_init_path",
]

#: the checkpoint file each stage writes in the bundle's ``models`` folder
STAGE_CHECKPOINTS = {"baseline": "baseline.pt", "teachers": "teachers.pt", "student": "model.pt"}
#: stage-0 loss options per task: FIS, or the plain loss (ERM)
STAGE0_LOSSES = {"classification": ("fis", "ce"), "segmentation": ("fis", "dice_ce")}
_TASKS = tuple(STAGE0_LOSSES)
#: how the student starts: a fresh network, or the stage-0 backbone with a new head (the public re-implementation)
STUDENT_INITS = ("scratch", "baseline")


def stage_checkpoint(ckpt_dir: str, stage: str = "student") -> str:
    """Path of ``stage``'s checkpoint in ``ckpt_dir`` (``"baseline"``, ``"teachers"`` or ``"student"``)."""
    return os.path.join(ckpt_dir, look_up_option(stage, STAGE_CHECKPOINTS))  # the mapping's value: the file name


def student_init_path(student_init: str, baseline_path: str) -> str | None:
    """The checkpoint the student starts from: ``None`` for ``"scratch"``, the stage-0 checkpoint for
    ``"baseline"`` (its backbone, with a new head; see :class:`monai_fair.methods.fairdi.StudentBaselineInit`)."""
    return None if look_up_option(student_init, STUDENT_INITS) == "scratch" else baseline_path


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


def _group_counts(data: Sequence[Mapping], num_groups: int, group_key: str) -> np.ndarray:
    g = check_group_ids([d[group_key] for d in data], num_groups, name=f"datalist '{group_key}'")
    return np.bincount(g.numpy(), minlength=num_groups)


def teacher_eligible_groups(
    data: Sequence[Mapping],
    num_groups: int,
    min_group_size: int = 20,
    task: str = "classification",
    group_key: str = "group",
    label_key: str = "label",
) -> list[bool]:
    """Which groups get a teacher of their own: at least ``min_group_size`` training items and, for
    classification, both classes. The others keep the stage-0 model as their teacher (with a warning that gives no
    count, so no small group's size is logged)."""
    task = look_up_option(task, _TASKS)
    counts = _group_counts(data, num_groups, group_key)
    ok = counts >= max(int(min_group_size), 1)
    if task == "classification":
        g = np.array([int(d[group_key]) for d in data], dtype=int)
        y = np.array([int(np.asarray(d[label_key]).reshape(-1)[0]) for d in data], dtype=int)
        classes = np.zeros((num_groups, max(int(y.max(initial=0)) + 1, 2)), dtype=bool)
        classes[g, y] = True
        ok &= classes.sum(1) >= 2
    for k in np.flatnonzero(~ok).tolist():
        warnings.warn(
            f"FairDi: group {k} has too few training samples (teacher_min_group_size={min_group_size}) or a single "
            "class for a teacher of its own; its teacher is the stage-0 model.",
            stacklevel=2,
        )
    return ok.tolist()


def group_balanced_sampler(
    data: Sequence[Mapping],
    eligible: Sequence[bool],
    num_samples: int | None = None,
    group_key: str = "group",
    seed: int | None = None,
) -> torch.utils.data.WeightedRandomSampler:
    """Sampler drawing every eligible group equally often (with replacement) and never an ineligible group.

    Sample ``i`` of group ``g`` has weight ``1 / n_g`` if ``eligible[g]`` else 0, so each of the ``K'`` eligible
    groups makes ``1/K'`` of every batch in expectation. Teacher training is therefore sized in samples
    (``num_samples`` per epoch, default one pass's worth of the whole training set), not in epochs of a group:
    each teacher sees about ``num_samples / K'`` samples of its group per epoch, however small the group.
    """
    num_groups = len(eligible)
    counts = _group_counts(data, num_groups, group_key)
    ok = torch.as_tensor(list(eligible), dtype=torch.bool) & (torch.as_tensor(counts) > 0)
    if not bool(ok.any()):
        raise ValueError(
            "no group has enough training samples (and both classes) for a teacher of its own; lower "
            "teacher_min_group_size or run the baseline stage alone."
        )
    per_group = torch.where(ok, 1.0 / torch.as_tensor(counts, dtype=torch.float64).clamp_min(1), 0.0)
    g = torch.as_tensor([int(d[group_key]) for d in data])
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    n = int(num_samples) if num_samples is not None else len(data)
    return torch.utils.data.WeightedRandomSampler(per_group[g], num_samples=n, replacement=True, generator=gen)
