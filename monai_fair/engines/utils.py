# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Helpers shared by the group-aware engines: reading the group id of a batch and exposing it in the output."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.utils.validation import check_group_ids

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["get_batch_group", "GroupOutputWriter", "GroupAwareLoss"]


def get_batch_group(batch: Any, group_key: str, device: torch.device | str | None = None) -> torch.Tensor:
    """Return the integer group ids of a collated batch as a 1-D ``torch.long`` tensor.

    Args:
        batch: a collated batch dictionary (``engine.state.batch``).
        group_key: key of the group id in the batch (see ``docs/design.md``: ``"group"``).
        device: device to move the ids to.

    Raises:
        KeyError: when the batch has no ``group_key`` entry.
        ValueError: when the ids are not integers >= 0 (e.g. NaN or a negative "unknown" code).
    """
    if not isinstance(batch, Mapping) or group_key not in batch:
        keys = sorted(batch.keys()) if isinstance(batch, Mapping) else type(batch).__name__
        raise KeyError(
            f"batch has no '{group_key}' entry (available: {keys}); every datalist item needs an integer group id "
            f"under '{group_key}', see monai_fair.data.load_fair_datalist."
        )
    return check_group_ids(batch[group_key], name=f"batch['{group_key}']", device=device)


class GroupOutputWriter:
    """Ignite event handler that copies the batch's group ids into ``engine.state.output``.

    It runs on ``IterationEvents.FORWARD_COMPLETED``, i.e. after the forward pass and before the loss,
    the decollation and the post-processing, so the group travels with every decollated output item and
    metric handlers can read it with ``from_engine(["pred", "label", group_key])``.
    """

    def __init__(self, group_key: str = "group") -> None:
        self.group_key = group_key

    def __call__(self, engine: Engine) -> None:
        engine.state.output[self.group_key] = get_batch_group(engine.state.batch, self.group_key, engine.state.device)


class GroupAwareLoss(torch.nn.Module):
    """Adapt a loss ``loss(pred, label, group)`` to MONAI's two-argument ``loss(pred, label)`` call.

    The engine sets ``engine.state.output[group_key]`` (see :class:`GroupOutputWriter`) before the loss is
    called; this wrapper reads it from there, so the engine's own iteration logic stays MONAI's.
    """

    def __init__(self, loss: Callable, group_key: str = "group") -> None:
        super().__init__()
        self.loss = loss
        self.group_key = group_key
        self.engine: Engine | None = None

    def forward(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if self.engine is None:
            raise RuntimeError("GroupAwareLoss is not bound to an engine; use it through GroupSupervisedTrainer.")
        return self.loss(pred, label, self.engine.state.output[self.group_key])
