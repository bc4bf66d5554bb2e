# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Helpers for data-parallel training over ``torch.distributed`` without ``DistributedDataParallel`` wrappers.

Used where DDP wrappers do not fit (APPLE's two optimisers over hooked perturbers, additive metric states): the
world size and rank, a mean all-reduce of gradients, a broadcast of module states and a sum all-reduce of tensors.
Every function is a no-op without an initialised process group or with one rank.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "get_world_size",
    "get_rank",
    "is_rank_zero",
    "all_reduce_gradients",
    "broadcast_module_states",
    "all_reduce_sum",
]


def _initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of ranks of the default process group (1 without one)."""
    return dist.get_world_size() if _initialised() else 1


def get_rank() -> int:
    """Rank of this process in the default process group (0 without one)."""
    return dist.get_rank() if _initialised() else 0


def is_rank_zero() -> bool:
    """True on rank 0 and in single-process runs (where files and reports are written)."""
    return get_rank() == 0


def all_reduce_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace the gradient of every parameter by its mean over the ranks of the default process group.

    ``grad <- (1 / W) * sum_r grad_r`` (``W`` ranks), what ``DistributedDataParallel`` computes, in one
    all-reduce of a flat buffer. A parameter without a gradient on a rank counts as zeros there (every rank joins
    the same collective, as DDP with ``find_unused_parameters``); it keeps ``grad=None`` only if no rank has a
    gradient for it, so optimisers skip it as in single-process training. Every rank must pass the same
    parameters in the same order.
    """
    world = get_world_size()
    if world == 1:
        return
    params = list(params)
    if not params:
        return
    has = [p.grad is not None for p in params]
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
        + [torch.tensor(has, dtype=params[0].dtype, device=params[0].device)]
    )
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    chunks = torch.split(flat, [p.numel() for p in params] + [len(params)])
    for p, g, n in zip(params, chunks[:-1], chunks[-1].tolist()):
        p.grad = (g / world).reshape(p.shape) if n > 0 else None


def broadcast_module_states(modules: Iterable[nn.Module], src: int = 0) -> None:
    """Copy the parameters and buffers of ``modules`` from rank ``src`` to every rank (what DDP does at
    construction)."""
    if get_world_size() == 1:
        return
    with torch.no_grad():
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=src)


def all_reduce_sum(tensors: Iterable[torch.Tensor]) -> None:
    """Sum each tensor in place over the ranks (for additive states such as counts and moment sums)."""
    if get_world_size() == 1:
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
