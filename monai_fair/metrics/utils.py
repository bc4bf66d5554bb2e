# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Shared helpers of the group fairness metrics: input conversion, warnings, masked reductions over groups,
equity scaling and percentile intervals (resampling: :mod:`monai_fair.metrics.resampling`).

Everything here works on tensors with arbitrary leading "replicate" dimensions (``(..., G)``), so the same
code computes a metric on the data (one replicate) and on all bootstrap replicates at once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "FairnessMetricWarning",
    "to_flat_tensor",
    "group_label",
    "masked_range",
    "masked_min",
    "masked_max",
    "equity_scaled",
    "percentile_ci",
    "tensor_to_float",
]


class FairnessMetricWarning(UserWarning):
    """Warning raised when a group metric is undefined (empty group, one class, NaN input) and set to NaN."""


def to_flat_tensor(x: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert ``x`` (tensor, MetaTensor, numpy array, list of scalars or of 0-/1-element tensors) to a plain
    CPU tensor. Raises ``ValueError`` naming ``name`` when it cannot be converted."""
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            return torch.zeros(0, dtype=dtype or torch.float64)
        if all(isinstance(v, torch.Tensor) for v in x):
            x = torch.stack([torch.as_tensor(v).reshape(v.shape) for v in x])
        elif all(isinstance(v, np.ndarray) for v in x):
            x = np.stack(x)
    try:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{name}` cannot be converted to a tensor: {e}") from e
    if hasattr(t, "as_tensor"):  # MetaTensor -> plain tensor
        t = t.as_tensor()
    t = t.detach().cpu()
    if dtype is not None:
        t = t.to(dtype)
    return t


def group_label(g: int, group_names: Sequence[str] | None) -> str:
    """Human-readable label of group id ``g`` for warnings (its name when known)."""
    if group_names is not None and 0 <= g < len(group_names):
        return f"group {g} ({group_names[g]!r})"
    return f"group {g}"


def _masked(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``values`` with excluded (``mask`` False) entries set to NaN; ``mask`` broadcasts over the last dims."""
    if mask is None:
        return values
    return torch.where(mask.to(values.device), values, torch.full_like(values, float("nan")))


def masked_max(values: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Max over ``dim`` ignoring NaN and masked-out entries; NaN when nothing is left."""
    v = _masked(values, mask)
    defined = ~torch.isnan(v)
    out = torch.where(defined, v, torch.full_like(v, -math.inf)).amax(dim=dim)
    return torch.where(defined.any(dim=dim), out, torch.full_like(out, float("nan")))


def masked_min(values: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Min over ``dim`` ignoring NaN and masked-out entries; NaN when nothing is left."""
    return -masked_max(-values, mask, dim)


def masked_range(
    values: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1, min_defined: int = 2
) -> torch.Tensor:
    """``max - min`` over ``dim`` (the groups) ignoring NaN/masked entries; NaN when fewer than
    ``min_defined`` entries are defined. For two groups this is ``|M_0 - M_1|``."""
    v = _masked(values, mask)
    n_def = (~torch.isnan(v)).sum(dim=dim)
    out = masked_max(v, None, dim) - masked_min(v, None, dim)
    return torch.where(n_def >= min_defined, out, torch.full_like(out, float("nan")))


def equity_scaled(overall: torch.Tensor, per_group: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Equity-scaled metric of the Harvard-GF / FairSeg line (alpha = 1).

    .. math:: ES\\text{-}M = \\frac{M_{all}}{1 + \\sum_g |M_{all} - M_g|}

    Groups that are masked out or undefined (NaN) are left out of the sum; NaN when no group is defined.

    Args:
        overall: ``(...)`` metric on all samples.
        per_group: ``(..., G)`` metric of each group.
        mask: ``(G,)`` groups to include.
    """
    v = _masked(per_group, mask)
    defined = ~torch.isnan(v)
    dev = torch.where(defined, (overall[..., None] - v).abs(), torch.zeros_like(v)).sum(-1)
    out = overall / (1.0 + dev)
    return torch.where(defined.any(-1), out, torch.full_like(out, float("nan")))


def percentile_ci(replicates: torch.Tensor, ci: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile confidence interval over the first dimension, ignoring NaN replicates."""
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}.")
    alpha = (1.0 - ci) / 2.0
    r = replicates.to(torch.float64)
    q = torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.nanquantile(r, q, dim=0)
    return out[0], out[1]


def tensor_to_float(x: torch.Tensor | float) -> float:
    """Python float of a 0-d tensor (NaN stays NaN)."""
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)
