# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Strict-JSON conversion of metric results (NaN and infinities become ``null``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["to_json_safe", "from_json_safe", "to_builtin"]


def to_json_safe(x: Any) -> Any:
    """Return a copy of ``x`` that ``json.dumps(..., allow_nan=False)`` accepts.

    Dicts (keys become strings), lists and tuples are converted recursively; scalar tensors and numpy scalars
    become Python numbers, other tensors and arrays become lists; NaN and +-inf become ``None`` (JSON ``null``),
    because undefined metrics (a one-class group, an empty group) are NaN and strict JSON readers reject ``NaN``.
    """
    if isinstance(x, dict):
        return {str(k): to_json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json_safe(v) for v in x]
    if isinstance(x, (torch.Tensor, np.ndarray)):
        x = x.tolist()
        return to_json_safe(x) if isinstance(x, list) else to_json_safe(x)
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def from_json_safe(x: Any) -> Any:
    """Inverse of :func:`to_json_safe` for numbers: ``None`` inside lists and dicts becomes ``float('nan')``."""
    if isinstance(x, dict):
        return {k: from_json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_json_safe(v) for v in x]
    return float("nan") if x is None else x


def to_builtin(x: Any) -> Any:
    """Numpy scalars -> Python numbers, tuples -> lists, mappings -> dicts (tensors and NaN kept as they are), so that
    a state saved with ``torch.save`` loads with ``torch.load(..., weights_only=True)``."""
    if isinstance(x, Mapping):
        return {k: to_builtin(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_builtin(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
