# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Generic networks (method-specific networks live in :mod:`monai_fair.methods`)."""

from __future__ import annotations

from .small_vgg import SmallVGGNet

__all__ = ["SmallVGGNet"]
