# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small shared utilities: group-id validation, distributed helpers, forward hooks, strict JSON."""

from __future__ import annotations

from .distributed import (
    all_reduce_gradients,
    all_reduce_sum,
    broadcast_module_states,
    get_rank,
    get_world_size,
    is_rank_zero,
)
from .hooks import LayerCatcher, get_named_module
from .serialization import from_json_safe, to_builtin, to_json_safe
from .validation import check_group_ids

__all__ = [
    "to_json_safe",
    "from_json_safe",
    "to_builtin",
    "check_group_ids",
    "get_world_size",
    "get_rank",
    "is_rank_zero",
    "all_reduce_gradients",
    "broadcast_module_states",
    "all_reduce_sum",
    "get_named_module",
    "LayerCatcher",
]
