# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""MONAI ``SupervisedEvaluator`` that exposes each sample's demographic group to metrics and reports."""

from __future__ import annotations

from typing import Any

from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents

from monai_fair.engines.utils import GroupOutputWriter

__all__ = ["GroupSupervisedEvaluator"]


class GroupSupervisedEvaluator(SupervisedEvaluator):
    """A :class:`monai.engines.SupervisedEvaluator` whose output carries the batch's group ids.

    After every forward pass ``engine.state.output[group_key]`` holds ``batch[group_key]``, so group metric
    handlers (``monai_fair.handlers``) and :class:`monai_fair.handlers.FairnessReportHandler` read it with
    ``output_transform=from_engine(["pred", "label", "group"])``. The network itself never sees the group.

    Args:
        group_key: key of the group id in the batch dictionaries; ``None`` turns the evaluator into a plain
            ``SupervisedEvaluator`` (e.g. for inference on data without demographics).
        args, kwargs: all arguments of :class:`monai.engines.SupervisedEvaluator`.
    """

    def __init__(self, *args: Any, group_key: str | None = "group", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_key = group_key
        if group_key is not None:
            self.add_event_handler(IterationEvents.FORWARD_COMPLETED, GroupOutputWriter(group_key))
