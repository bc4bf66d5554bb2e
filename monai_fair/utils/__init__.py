# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small shared utilities: group-id validation, distributed helpers, forward hooks, strict JSON, atomic writes.

The names are resolved lazily (PEP 562), so ``from monai_fair.utils.io import atomic_write_text`` imports neither
torch nor MONAI, and ``from monai_fair.utils import check_group_ids`` imports only what that function needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai_fair.utils.lazy import lazy_exports

#: public name -> submodule of :mod:`monai_fair.utils` that defines it
_WHERE = {
    "to_json_safe": "serialization",
    "from_json_safe": "serialization",
    "to_builtin": "serialization",
    "check_group_ids": "validation",
    "get_world_size": "distributed",
    "get_rank": "distributed",
    "is_rank_zero": "distributed",
    "all_reduce_gradients": "distributed",
    "broadcast_module_states": "distributed",
    "all_reduce_sum": "distributed",
    "get_named_module": "hooks",
    "LayerCatcher": "hooks",
    "atomic_path": "io",
    "atomic_write_text": "io",
    "atomic_write_json": "io",
    "add_argument_group": "cli",
}
__all__ = list(_WHERE)

if TYPE_CHECKING:
    from .cli import add_argument_group
    from .distributed import (
        all_reduce_gradients,
        all_reduce_sum,
        broadcast_module_states,
        get_rank,
        get_world_size,
        is_rank_zero,
    )
    from .hooks import LayerCatcher, get_named_module
    from .io import atomic_path, atomic_write_json, atomic_write_text
    from .serialization import from_json_safe, to_builtin, to_json_safe
    from .validation import check_group_ids


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
