# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The one validator of group ids used by every part of monai-fair (losses, engines, metrics, methods, CLI).

The convention (``docs/design.md``): a sample's group is an integer id in ``0..K-1``; unknown attribute values are
mapped to a group (or dropped) by the datalist's missing-value policy before any tensor sees them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["check_group_ids"]


def check_group_ids(
    group: Any,
    num_groups: int | None = None,
    *,
    name: str = "group",
    num_samples: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Validate group ids and return them as a 1-D ``torch.long`` tensor.

    Accepts a tensor, a numpy array, a sequence or a scalar of integers (integral floats such as ``1.0`` are
    accepted, as collation may produce them). Every failure raises ``ValueError`` with the same wording,
    ``"<name> must hold integer group ids in 0..K-1 ...; got ..."``, naming the offending values.

    Args:
        group: the ids.
        num_groups: ``K``; when given, every id must be ``< K``.
        name: what the ids are called in the error message (e.g. ``"batch['group']"``, a file and column).
        num_samples: when given, the number of ids must equal it (one id per sample).
        device: device of the returned tensor (default: unchanged).

    Raises:
        ValueError: non-integer, NaN, negative or ``>= num_groups`` ids, or a length different from ``num_samples``.
    """
    rng = f"0..{num_groups - 1}" if num_groups is not None else "0..K-1"
    want = f"{name} must hold integer group ids in {rng}" + (f" (num_groups={num_groups})" if num_groups else "")
    if isinstance(group, torch.Tensor):
        g = group.detach()
    else:
        try:
            arr = np.asarray(group)
        except Exception as e:  # ragged or unconvertible input
            raise ValueError(f"{want}; got {type(group).__name__} {group!r}.") from e
        if arr.dtype.kind not in "biuf":
            bad = sorted({str(v) for v in arr.reshape(-1).tolist()})[:10]
            raise ValueError(f"{want}; got non-numeric values {bad}.")
        g = torch.as_tensor(arr)
    g = g.reshape(-1)
    if num_samples is not None and g.numel() != num_samples:
        raise ValueError(f"{want}; got {g.numel()} ids for {num_samples} samples.")
    if g.is_floating_point():
        bad = torch.isnan(g) | (g != g.round())
        if bool(bad.any()):
            vals = sorted({str(v) for v in g[bad].tolist()})[:10]
            raise ValueError(f"{want}; got non-integer values {vals}.")
    if g.dtype == torch.bool:
        g = g.long()
    g = g.long()
    if g.numel():
        lo, hi = int(g.min()), int(g.max())
        if lo < 0 or (num_groups is not None and hi >= num_groups):
            out = g[(g < 0) | (g >= num_groups)] if num_groups is not None else g[g < 0]
            vals = sorted(set(out.tolist()))[:10]
            hint = " (a negative id is an unknown attribute value: map it with the datalist's missing-value policy)"
            raise ValueError(f"{want}; got out-of-range ids {vals}{hint if lo < 0 else ''}.")
    return g.to(device) if device is not None else g
