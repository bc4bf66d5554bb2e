# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small shared utilities."""

from __future__ import annotations

from .serialization import from_json_safe, to_builtin, to_json_safe

__all__ = ["to_json_safe", "from_json_safe", "to_builtin"]
