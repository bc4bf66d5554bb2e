# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Generic group losses (``loss(pred, target, group)``): group reweighting and GroupDRO.

Use them through :class:`monai_fair.engines.GroupSupervisedTrainer` with ``loss_takes_group=True``. Method-specific
losses live with their method in :mod:`monai_fair.methods`.
"""

from __future__ import annotations

from .group_dro import GroupDROLoss
from .group_reweighted import GroupReweightedLoss, per_sample_loss

__all__ = ["GroupDROLoss", "GroupReweightedLoss", "per_sample_loss"]
