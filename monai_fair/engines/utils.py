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

__all__ = ["get_batch_group", "GroupOutputWriter", "GroupAwareLoss", "LossInputBinder"]


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
    """Adapt a loss ``loss(pred, label, group, *extra)`` to MONAI's two-argument ``loss(pred, label)`` call.

    The loss never sees its engine: before each loss call the trainer *binds* the iteration's extra inputs (the
    batch's group ids, and e.g. FairDi's teacher logits) with :meth:`bind`, from an ``IterationEvents`` handler
    (see :class:`LossInputBinder`); :meth:`forward` then calls ``loss(pred, label, *bound)`` in ``keys`` order.
    The engine's own iteration logic stays MONAI's (AMP, gradient accumulation, events).

    Args:
        loss: the wrapped loss; the group is always its third argument.
        keys: names of the extra inputs, in the order the loss takes them after ``(pred, label)``.
    """

    def __init__(self, loss: Callable, keys: tuple[str, ...] = ("group",)) -> None:
        super().__init__()
        self.loss = loss
        self.keys = tuple(keys)
        self._bound: dict[str, torch.Tensor] = {}

    def bind(self, **inputs: torch.Tensor) -> None:
        """Set the extra inputs of the next call (one tensor per name in ``keys``)."""
        missing = [k for k in self.keys if k not in inputs]
        if missing:
            raise KeyError(f"GroupAwareLoss.bind needs {list(self.keys)}; missing {missing}.")
        self._bound = {k: inputs[k] for k in self.keys}

    def forward(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if not self._bound:
            raise RuntimeError(
                "GroupAwareLoss has no bound inputs; use it through GroupSupervisedTrainer(loss_takes_group=True) or "
                "call .bind(group=...) before the loss."
            )
        bound, self._bound = self._bound, {}
        return self.loss(pred, label, *(bound[k] for k in self.keys))


class LossInputBinder:
    """Ignite handler (``IterationEvents.FORWARD_COMPLETED``) that binds ``engine.state.output[key]`` for every key
    of a :class:`GroupAwareLoss` before the engine calls it."""

    def __init__(self, loss: GroupAwareLoss) -> None:
        self.loss = loss

    def __call__(self, engine: Engine) -> None:
        self.loss.bind(**{k: engine.state.output[k] for k in self.loss.keys})
