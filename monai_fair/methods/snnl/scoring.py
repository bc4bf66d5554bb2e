# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Per-channel SNNL scores of a named layer with the sensitive attribute as labels (SCP channel scoring).

Kong et al., "Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis", MICCAI 2024.
For channel ``c`` of layer ``L`` the activation map ``F_c`` of a batch is flattened to ``b`` vectors of length
``prod(spatial)`` and scored with the Soft Nearest Neighbour Loss using the *group ids* as labels:

    score_c = sum_{batches} sum_{valid anchors i} ell_i(F_c) / (number of valid anchors over all batches)

A *low* score means that channel's activations cluster by group ("sensitive channel"); SCP prunes those.
All channels are scored in one batched ``(C, b, b)`` computation, chunked over channels to bound memory.
Scores are only comparable when every channel sees the same batches, so the batches are fixed and
group-stratified (:func:`stratified_batch_indices`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from monai_fair.methods.snnl.losses import check_snnl_options, snnl_kernel, snnl_label_index, snnl_sample_stats
from monai_fair.utils import LayerCatcher, check_group_ids

_CACHE_BYTES = 1 << 20  # per-block (C_block, b, b) logits budget: ~L2-sized

__all__ = ["stratified_batch_indices", "snnl_channel_scores", "score_channels_snnl"]


def stratified_batch_indices(
    groups: Sequence[int] | np.ndarray | torch.Tensor, batch_size: int, num_batches: int | None = None, seed: int = 0
) -> list[list[int]]:
    """Fixed, group-stratified batches: each batch holds the groups in the dataset's proportions.

    Samples of each group are shuffled with ``seed`` and dealt round-robin (by proportion) into
    ``ceil(N / batch_size)`` batches, so every batch has ``~ batch_size * n_g / N`` members of group ``g``
    (rounded; a group with fewer than ``~ 2 N / batch_size`` members can have batches with 0 or 1 member, whose
    anchors SNNL drops). The result is usable as a ``DataLoader(batch_sampler=...)``.

    Args:
        groups: group id of every dataset item.
        batch_size: items per batch.
        num_batches: keep only the first ``num_batches`` batches (``None``: all).
        seed: seed of the shuffle (the batches are fixed for a given seed).
    """
    g = check_group_ids(groups, name="stratified_batch_indices groups").cpu().numpy()
    n = g.size
    if n == 0:
        raise ValueError("stratified_batch_indices: empty dataset.")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 for SNNL, got {batch_size}.")
    rng = np.random.default_rng(seed)
    n_batches = max(1, int(np.ceil(n / batch_size)))
    # position of every item in a stratified order: item k of group g (shuffled) gets key (k + u) / n_g, so
    # sorting by key interleaves groups in proportion; consecutive chunks of the sorted order are the batches.
    keys = np.empty(n, dtype=np.float64)
    for gid in np.unique(g):  # loop over the (few) groups, not over samples
        idx = np.flatnonzero(g == gid)
        perm = rng.permutation(idx)
        keys[perm] = (np.arange(idx.size) + rng.uniform(0.0, 1.0)) / idx.size
    order = np.argsort(keys, kind="stable")
    batches = [b.tolist() for b in np.array_split(order, n_batches)]
    return batches[:num_batches] if num_batches is not None else batches


def snnl_channel_scores(
    activations: torch.Tensor,
    groups: torch.Tensor,
    temperature: float = 1.0,
    distance: str = "cosine",
    legacy_self_term: bool = False,
    chunk_size: int = 128,
) -> tuple[torch.Tensor, int]:
    """Sum of per-anchor SNNL terms of every channel of one batch of activations, vectorised over channels.

    Args:
        activations: ``(b, C, *spatial)`` layer output (or ``(b, C)``).
        groups: ``(b,)`` group ids (the SNNL labels).
        temperature, distance, legacy_self_term: see :func:`monai_fair.methods.snnl.losses.snnl_per_anchor`.
        chunk_size: at most this many channels per batched ``(chunk, b, b)`` computation (bounds memory at
            ``chunk * b * b``); on CPU blocks are further capped at ~1 MiB of fp32 logits so they stay in cache.

    Returns:
        ``(sums, n_valid)``: ``(C,)`` float64 sums of the valid anchors' terms and the number of valid anchors
        (the same for every channel, as validity depends on the labels only).
    """
    if activations.ndim < 2:
        raise ValueError(f"activations must be (b, C, ...), got shape {tuple(activations.shape)}.")
    if type(activations) is not torch.Tensor:  # e.g. MONAI MetaTensor: plain tensor ops only
        activations = activations.as_subclass(torch.Tensor)
    b, c = activations.shape[:2]
    feats = activations.detach().reshape(b, c, -1).transpose(0, 1)  # (C, b, S) view
    distance = check_snnl_options(temperature, distance)
    groups = check_group_ids(groups, name="SNNL scoring groups", num_samples=b, device=activations.device)
    index = snnl_label_index(groups, legacy_self_term)  # once per batch, shared by every channel block
    valid = index.valid
    sums = torch.zeros(c, dtype=torch.float64, device=activations.device)
    # blocks of at most chunk_size channels; on CPU also small enough that the (block, b, b) logits stay in cache
    block = max(1, chunk_size)
    if activations.device.type == "cpu":
        block = max(1, min(block, _CACHE_BYTES // max(1, 4 * b * b)))
    with torch.no_grad(), torch.autocast(device_type=feats.device.type, enabled=False):
        feats = feats.float()  # fp32 even under AMP (no copy for fp32 input)
        stat = snnl_sample_stats(feats, distance, check_finite=True)  # (C, b) norms in one pass; NaN/Inf check
        for start in range(0, c, block):  # each block is one batched computation over its channels
            stop = start + block
            terms = snnl_kernel(feats[start:stop], stat[start:stop], index, temperature, distance)
            sums[start:stop] = terms[:, valid].sum(-1, dtype=torch.float64)
    return sums, int(valid.sum())


@torch.no_grad()
def score_channels_snnl(
    model: torch.nn.Module,
    layer_name: str,
    batches: Iterable[Any],
    temperature: float = 1.0,
    distance: str = "cosine",
    legacy_self_term: bool = False,
    image_key: str = "image",
    group_key: str = "group",
    device: torch.device | str | None = None,
    chunk_size: int = 128,
) -> torch.Tensor:
    """SNNL-on-the-sensitive-attribute score of every output channel of ``model.<layer_name>``.

    The model runs in eval mode (restored afterwards); a forward hook captures the layer's output; the
    per-anchor terms of all channels are summed over all batches and divided by the total number of valid
    anchors (anchors whose group has another member in the same batch).

    Args:
        model: the network.
        layer_name: dotted module name (``dict(model.named_modules())`` key), e.g. ``"features.12"``.
        batches: iterable of batch dicts (``image_key``, ``group_key``) or ``(image, group)`` pairs; use a
            fixed, group-stratified loader (:func:`stratified_batch_indices`) so scores are comparable.
        temperature, distance, legacy_self_term: SNNL settings (SCP code: cosine, T=1, self term).
        image_key, group_key: batch keys.
        device: where to run (default: the model's device).
        chunk_size: channels per batched computation.

    Returns:
        ``(C,)`` float64 tensor of mean SNNL per channel (lower = more group-separating = more "sensitive").

    Raises:
        ValueError: when no batch had a valid anchor (every group appears at most once per batch).
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total: torch.Tensor | None = None
    count = 0
    try:
        with LayerCatcher(model, layer_name, capture="output") as catcher:
            for batch in batches:
                if isinstance(batch, Mapping):
                    if group_key not in batch:
                        raise KeyError(f"scoring batch has no '{group_key}' entry (keys: {sorted(batch)}).")
                    x, g = batch[image_key], batch[group_key]
                else:
                    x, g = batch[0], batch[1]
                g = check_group_ids(g, name=f"scoring batch['{group_key}']", device=device)
                model(torch.as_tensor(x).to(device))
                sums, n_valid = snnl_channel_scores(
                    catcher.pop(), g, temperature, distance, legacy_self_term, chunk_size
                )
                total = sums if total is None else total + sums
                count += n_valid
    finally:
        model.train(was_training)
    if total is None or count == 0:
        raise ValueError(
            "score_channels_snnl: no anchor had a same-group partner in any batch; use larger, group-stratified "
            "batches (monai_fair.methods.snnl.scoring.stratified_batch_indices)."
        )
    return total / count
