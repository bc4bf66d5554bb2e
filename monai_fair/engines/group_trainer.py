# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""MONAI ``SupervisedTrainer`` that passes each sample's demographic group to the loss and the metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents

from monai_fair.engines.utils import GroupAwareLoss, GroupOutputWriter, LossInputBinder

__all__ = ["GroupSupervisedTrainer"]


class GroupSupervisedTrainer(SupervisedTrainer):
    """A :class:`monai.engines.SupervisedTrainer` that knows each sample's group.

    Everything MONAI's trainer does is kept (AMP, gradient accumulation, post-processing, handlers); two
    things are added:

    * after every forward pass, the batch's group ids (``batch[group_key]``, integers ``0..K-1``) are put in
      ``engine.state.output[group_key]``, so they are decollated with ``pred`` and ``label`` and reach metric
      handlers through ``output_transform=from_engine(["pred", "label", "group"])``;
    * with ``loss_takes_group=True`` the loss is called as ``loss_function(pred, label, group)``, which is what
      group-aware losses (FIS, fair distillation, ...) need.

    Args:
        loss_function: the loss; called with ``(pred, label, group)`` when ``loss_takes_group`` is True.
        group_key: key of the group id in the batch dictionaries (see ``docs/design.md``).
        loss_takes_group: whether ``loss_function`` takes the group ids as third argument.
        args, kwargs: all other arguments of :class:`monai.engines.SupervisedTrainer`.

    Example (bundle config)::

        "trainer": {"_target_": "monai_fair.engines.GroupSupervisedTrainer", "loss_takes_group": true, ...}
    """

    def __init__(
        self,
        *args: Any,
        loss_function: Callable,
        group_key: str = "group",
        loss_takes_group: bool = False,
        **kwargs: Any,
    ) -> None:
        self.group_key = group_key
        self.loss_takes_group = loss_takes_group
        if loss_takes_group:
            loss_function = GroupAwareLoss(loss_function, keys=(group_key,))
        super().__init__(*args, loss_function=loss_function, **kwargs)
        self.add_event_handler(IterationEvents.FORWARD_COMPLETED, GroupOutputWriter(group_key))
        if loss_takes_group:
            self.add_event_handler(IterationEvents.FORWARD_COMPLETED, LossInputBinder(loss_function))
