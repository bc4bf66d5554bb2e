# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Generic networks and network utilities (method-specific networks live in :mod:`monai_fair.methods`)."""

from __future__ import annotations

from .pretrained import PRETRAINED_WRAPPER_KEYS, freeze_backbone, load_pretrained_weights, read_state_dict
from .small_vgg import SmallVGGNet

__all__ = ["SmallVGGNet", "load_pretrained_weights", "read_state_dict", "freeze_backbone", "PRETRAINED_WRAPPER_KEYS"]
