# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The feature-collection loop of the neural-collapse analysis: one evaluation of a network over one loader.

:func:`collect_neural_collapse` runs the network in ``eval()`` mode (BatchNorm running statistics, no dropout;
restored afterwards) and without gradients over a loader, reads the penultimate features with a forward **pre**-hook
on the named final ``nn.Linear`` (:class:`monai_fair.utils.LayerCatcher`, ``capture="input"``), and accumulates the
NC statistics overall and per group in one memory-bounded float64 pass
(:class:`monai_fair.methods.neural_collapse.NeuralCollapseAccumulator`; all-reduced under DDP, so every rank passes
its shard).

NC4 needs the class means before classifying: ``nc4_centres="two_pass"`` (exact) makes a second pass over the loader;
``"previous"`` classifies against the class means of the previous evaluation (``previous``; one pass, NC4 is NaN at
the first evaluation and lags by one evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from monai.utils import look_up_option

from monai_fair.engines.utils import get_batch_group
from monai_fair.methods.neural_collapse.accumulator import NeuralCollapseAccumulator
from monai_fair.methods.neural_collapse.metrics import classifier_from_linear, two_row_logits
from monai_fair.metrics import suppress_groups
from monai_fair.utils import LayerCatcher

__all__ = ["NC4_CENTRES", "NeuralCollapseEvaluation", "collect_neural_collapse"]

NC4_CENTRES = ("two_pass", "previous")


@dataclass
class NeuralCollapseEvaluation:
    """What one pass of :func:`collect_neural_collapse` returns.

    Attributes:
        metrics: :meth:`NeuralCollapseAccumulator.compute`'s result (``overall``, ``groups`` by id, ``counts``,
            ``options``), unsuppressed: apply :func:`monai_fair.methods.neural_collapse.summarise_evaluation` before
            any output.
        scores: ``(N, C)`` softmax of the (two-row) logits, on CPU (this rank's samples).
        labels, groups: ``(N,)`` class and group ids of those samples.
        class_means: ``(overall (C, D), per group (K, C, D))`` float64 class means (for the next evaluation's
            ``previous`` centres).
        shift: ``(D,)`` global feature mean (a numerically useful shift for the next evaluation's accumulator).
    """

    metrics: dict[str, Any]
    scores: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor
    class_means: tuple[torch.Tensor, torch.Tensor]
    shift: torch.Tensor


def _unpack(
    batch: Any,
    device: torch.device,
    prepare_batch: Callable | None,
    image_key: str,
    label_key: str,
    group_key: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if prepare_batch is not None:
        x, y, g = prepare_batch(batch)
        g = torch.as_tensor(g).reshape(-1).long()
    else:
        if not isinstance(batch, Mapping) or label_key not in batch or image_key not in batch:
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise KeyError(f"neural-collapse batch lacks '{image_key}' or '{label_key}' (keys: {keys}).")
        x, y, g = batch[image_key], batch[label_key], get_batch_group(batch, group_key)
    y = torch.as_tensor(y).as_subclass(torch.Tensor).reshape(-1).long()  # labels without MetaTensor metadata
    return torch.as_tensor(x).to(device), y, torch.as_tensor(g).as_subclass(torch.Tensor)


@torch.no_grad()
def collect_neural_collapse(
    network: torch.nn.Module,
    layer_name: str,
    loader: Iterable,
    num_classes: int,
    num_groups: int,
    *,
    global_mean: str = "weighted",
    group_means: str = "own",
    nc4_centres: str = "two_pass",
    previous: NeuralCollapseEvaluation | None = None,
    device: torch.device | str | None = None,
    prepare_batch: Callable | None = None,
    image_key: str = "image",
    label_key: str = "label",
    group_key: str = "group",
    min_group_size: int = 1,
) -> NeuralCollapseEvaluation:
    """Evaluate NC1-NC4 (overall and per group) of ``network`` on ``loader`` (see module doc).

    Args:
        network: the model (its final ``nn.Linear`` named ``layer_name`` is the classifier ``W``, ``b``).
        layer_name: key of ``network.named_modules()`` of the final ``nn.Linear``.
        loader: iterable of batch dicts (``image_key``, ``label_key``, ``group_key``), deterministic transforms.
        num_classes: C (>= 2; a single-logit network is binary).
        num_groups: K.
        global_mean, group_means: conventions of :meth:`NeuralCollapseAccumulator.compute`.
        nc4_centres: ``"two_pass"`` or ``"previous"``.
        previous: the previous evaluation on the same loader (centres for ``"previous"``, accumulation shift).
        device: device of the forward passes (default: the network's).
        prepare_batch: optional ``batch -> (inputs, labels, groups)`` replacing the key lookup.
        image_key, label_key, group_key: batch keys.
        min_group_size: groups suppressed under this threshold (:func:`monai_fair.metrics.suppress_groups`, with
            secondary suppression) are never named in a warning; the returned metrics still hold every group.
    """
    nc4_centres = look_up_option(nc4_centres, NC4_CENTRES)
    device = torch.device(device) if device is not None else next(network.parameters()).device
    was_training = network.training
    network.eval()
    acc = NeuralCollapseAccumulator(
        max(int(num_classes), 2), num_groups, shift=None if previous is None else previous.shift
    )
    one_pass = nc4_centres == "previous"
    if one_pass and previous is not None:
        acc.set_nc4_centres(*previous.class_means)
    scores, labels, groups = [], [], []
    try:
        with LayerCatcher(network, layer_name, capture="input", flatten=True, kind=torch.nn.Linear) as catcher:
            weight, _ = classifier_from_linear(catcher.module)
            for batch in loader:
                x, y, g = _unpack(batch, device, prepare_batch, image_key, label_key, group_key)
                out = network(x)
                feats = catcher.pop()
                acc.update(feats, y, g)
                if one_pass and previous is not None:
                    acc.update_nc4(feats, out, g)
                scores.append(torch.softmax(two_row_logits(out.as_subclass(torch.Tensor)).float(), 1).cpu())
                labels.append(y.cpu())
                groups.append(g.cpu())
            acc.all_reduce("moments")
            if not one_pass:
                for batch in loader:
                    x, _, g = _unpack(batch, device, prepare_batch, image_key, label_key, group_key)
                    out = network(x)
                    acc.update_nc4(catcher.pop(), out, g)
            acc.all_reduce("nc4")
            shown = suppress_groups(acc.counts.sum(1).cpu(), min_group_size)
            metrics = acc.compute(weight, global_mean=global_mean, group_means=group_means, report_groups=shown)
    finally:
        network.train(was_training)
    overall_mean, group_mean = acc.class_means()
    n = acc.counts.sum(0)
    shift = (overall_mean.nan_to_num() * n[:, None]).sum(0) / n.sum()
    return NeuralCollapseEvaluation(
        metrics,
        torch.cat(scores) if scores else torch.zeros(0, max(int(num_classes), 2)),
        torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
        torch.cat(groups) if groups else torch.zeros(0, dtype=torch.long),
        (overall_mean, group_mean),
        shift,
    )
