# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small functions the ``snnl_pruning_classification`` bundle calls from its configs (so that no ``$`` expression
holds logic): the fixed scoring batches of a datalist, the loading of the stage-1 (baseline) weights, and the
fine-tuning schedule of the pruning rounds (optimiser, per-round step decay, class-balanced sampler). The data
preparation and the check that a stage wrote its model are the shared :func:`monai_fair.data.prepare_datalist` and
:func:`monai_fair.data.require_model`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.utils import look_up_option

from monai_fair.methods.snnl.scoring import stratified_batch_indices
from monai_fair.utils import check_group_ids

__all__ = [
    "score_batches",
    "load_baseline_weights",
    "FINETUNE_OPTIMIZERS",
    "FINETUNE_SAMPLERS",
    "finetune_optimizer",
    "RoundStepDecay",
    "finetune_sampler",
]

#: fine-tuning optimisers: the base model's regime (Adam, as ``train.json``) or SCP's code (SGD, Nesterov)
FINETUNE_OPTIMIZERS = ("adam", "sgd")
#: fine-tuning samplers: SCP's class-balanced ``WeightedRandomSampler`` or a plain shuffle
FINETUNE_SAMPLERS = ("class_balanced", "shuffle")


def score_batches(
    items: Sequence[Mapping[str, Any]],
    batch_size: int,
    num_batches: int | None = None,
    seed: int = 0,
    group_key: str = "group",
) -> list[list[int]]:
    """Fixed, group-stratified batches of datalist ``items`` for SNNL scoring (``DataLoader(batch_sampler=...)``).

    See :func:`monai_fair.methods.snnl.stratified_batch_indices`; the groups are read from ``item[group_key]``.
    """
    missing = [i for i, it in enumerate(items) if group_key not in it][:5]
    if missing:
        raise ValueError(f"datalist items {missing} have no '{group_key}' entry; SNNL scoring needs a group per item.")
    groups = check_group_ids([it[group_key] for it in items], name=f"datalist '{group_key}'")
    return stratified_batch_indices(groups, batch_size, num_batches, seed=seed)


def load_baseline_weights(network: torch.nn.Module, path: str | os.PathLike, device: Any = "cpu") -> torch.nn.Module:
    """Load the trained (stage-1) weights from ``path`` into ``network`` (``weights_only=True``).

    Accepts a plain ``state_dict`` or a MONAI ``CheckpointSaver`` file (``{"model": state_dict}``).

    Raises:
        FileNotFoundError: when ``path`` does not exist (run the training stage, ``configs/train.json``, first).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"trained model {path} not found: run the training stage (configs/train.json) first, or set "
            "baseline_ckpt to an existing checkpoint."
        )
    state = torch.load(path, map_location=device, weights_only=True)
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    network.load_state_dict(state)
    return network


def finetune_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str = "adam",
    lr: float = 1e-4,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The optimiser of the pruning rounds' fine-tuning: ``"adam"`` (``torch.optim.Adam``, the regime the bundle's
    base model is trained in) or ``"sgd"`` (SGD with Nesterov momentum, the SCP code's)."""
    name = look_up_option(name, FINETUNE_OPTIMIZERS)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)


class RoundStepDecay:
    """Learning-rate factor of a step decay that restarts every pruning round (for ``LambdaLR``, stepped per epoch).

    SCP fine-tunes each pruned network in a fresh run with ``StepLR``; here the rounds follow each other in one
    trainer, so the factor of epoch ``e`` (0-based, counted over all rounds) is
    ``gamma ** ((e mod epochs_per_round) // step)``: full rate at the start of each round, times ``gamma`` every
    ``step`` epochs within it. ``step=None`` (or ``gamma=1``) keeps the rate constant.
    """

    def __init__(self, epochs_per_round: int, step: int | None = None, gamma: float = 0.1) -> None:
        if epochs_per_round < 1 or (step is not None and step < 1) or not 0 < gamma <= 1:
            raise ValueError(f"need epochs_per_round >= 1, step >= 1 or None, 0 < gamma <= 1; got "
                             f"{epochs_per_round}, {step}, {gamma}.")  # fmt: skip
        self.epochs_per_round, self.step, self.gamma = int(epochs_per_round), step, float(gamma)

    def __call__(self, epoch: int) -> float:
        if self.step is None:
            return 1.0
        return self.gamma ** ((int(epoch) % self.epochs_per_round) // int(self.step))


def finetune_sampler(
    data: Sequence[Mapping[str, Any]], mode: str = "class_balanced", seed: int = 0, label_key: str = "label"
) -> torch.utils.data.WeightedRandomSampler | None:
    """The fine-tuning sampler: ``"class_balanced"`` (SCP's code: each item drawn with probability proportional to
    ``1 / n(label)``, with replacement, ``len(data)`` draws per epoch) or ``"shuffle"`` (``None``: the data loader
    shuffles)."""
    if look_up_option(mode, FINETUNE_SAMPLERS) == "shuffle":
        return None
    labels = np.array([int(np.asarray(d[label_key]).reshape(-1)[0]) for d in data], dtype=np.int64)
    if labels.size == 0 or labels.min() < 0:
        raise ValueError(f"a class-balanced sampler needs integer class labels >= 0 under '{label_key}'.")
    weights = 1.0 / np.bincount(labels)[labels]
    gen = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights), len(labels), True, generator=gen)
