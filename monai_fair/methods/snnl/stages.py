# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small functions the ``snnl_pruning_classification`` bundle calls from its configs (so that no ``$`` expression
holds logic): the fixed scoring batches of a datalist and the loading of the stage-1 (baseline) weights. The data
preparation and the check that a stage wrote its model are the shared :func:`monai_fair.data.prepare_datalist` and
:func:`monai_fair.data.require_model`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from monai_fair.methods.snnl.scoring import stratified_batch_indices
from monai_fair.utils import check_group_ids

__all__ = ["score_batches", "load_baseline_weights"]


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
