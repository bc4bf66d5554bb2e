# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Structured (output-channel) pruning of a named convolution: masking, and physical removal.

Used by SCP (Kong et al., MICCAI 2024) to remove "sensitive" channels. The public SCP code masks only the conv
weight, so a pruned channel still emits its bias (and the BatchNorm shift) through the ReLU. Here a pruned
channel's output is exactly zero:

* :func:`mask_channels` masks, with :mod:`torch.nn.utils.prune` (a registered ``*_mask`` buffer that persists
  through fine-tuning: the optimiser updates ``weight_orig`` but the forward uses ``weight_orig * mask``),
  the conv's ``weight[c]`` and ``bias[c]`` and the following BatchNorm's ``weight[c]`` and ``bias[c]``, so
  both the conv output and the BN output of channel ``c`` are 0 (and ReLU(0) = 0).
* :func:`remove_channels` physically deletes the channels, giving a smaller network with the same outputs: the
  conv's output channels, the following BatchNorm's features (incl. running stats) and the *input* channels
  of the next consumer (Conv, or Linear after a pool/flatten, whose ``in_features`` must be a multiple ``k``
  of the channel count; columns ``c*k .. c*k+k-1`` are removed, i.e. flatten in channel-major order).

"Following" and "next consumer" are found in module registration order (``model.named_modules()``): the first
BatchNorm after the layer (with matching ``num_features``, before any other conv/linear) and the first
Conv/Linear after it. This is exact for sequential CNNs (VGG-like ``Conv -> BN -> ReLU -> [Pool] -> Conv``
chains and ``Conv -> Pool -> Flatten -> Linear`` heads, incl. MONAI ``Convolution`` blocks). It is **not**
valid for branching networks (residual additions, concatenations); masking still zeroes the conv/BN output
there, but physical removal is refused unless you pass ``example_input`` and the output check passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import prune

__all__ = ["find_following_modules", "mask_channels", "pruned_channels", "make_pruning_permanent", "remove_channels"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def find_following_modules(model: nn.Module, layer_name: str) -> tuple[nn.Module, str | None, str | None]:
    """Return ``(layer, bn_name, consumer_name)`` for ``layer_name`` in registration order (see module doc)."""
    names = [n for n, _ in model.named_modules()]
    modules = dict(model.named_modules())
    if layer_name not in modules:
        raise ValueError(f"layer {layer_name!r} not found in the network; module names include {names[1:30]}.")
    layer = modules[layer_name]
    if not isinstance(layer, _CONV):
        raise TypeError(f"layer {layer_name!r} is a {type(layer).__name__}; channel pruning needs a Conv1d/2d/3d.")
    bn_name = consumer_name = None
    for name in names[names.index(layer_name) + 1 :]:
        m = modules[name]
        if bn_name is None and consumer_name is None and isinstance(m, _BN) and m.num_features == layer.out_channels:
            bn_name = name
        elif isinstance(m, (*_CONV, nn.Linear)):
            consumer_name = name
            break
    return layer, bn_name, consumer_name


def _mask_param(module: nn.Module, name: str, channels: torch.Tensor) -> None:
    if getattr(module, name, None) is None:
        return
    mask = getattr(module, name + "_mask", None)
    if mask is None:  # first pruning of this parameter: register the mask (weight_orig is the same Parameter)
        mask = torch.ones_like(getattr(module, name))
        mask[channels.to(mask.device)] = 0
        prune.custom_from_mask(module, name, mask)
    else:  # later rounds: update the registered mask in place (the optimiser keeps its parameter)
        mask[channels.to(mask.device)] = 0
        setattr(module, name, getattr(module, name + "_orig") * mask)


def mask_channels(
    model: nn.Module, layer_name: str, channels: Sequence[int] | torch.Tensor, register: bool = False
) -> None:
    """Zero output channels of ``model.<layer_name>`` (conv weight + bias and the following BN's weight + bias).

    Masks accumulate over calls (iterative pruning); they persist through fine-tuning because the forward uses
    ``param_orig * param_mask``. Use :func:`make_pruning_permanent` before saving a plain ``state_dict``.
    With ``register=True`` the (all-ones) masks are registered even when ``channels`` is empty, so the
    ``state_dict`` keys stay the same over all pruning rounds.
    """
    layer, bn_name, _ = find_following_modules(model, layer_name)
    ch = torch.as_tensor(list(channels) if not isinstance(channels, torch.Tensor) else channels, dtype=torch.long)
    if ch.numel() == 0 and not register:
        return
    if ch.numel() and (int(ch.min()) < 0 or int(ch.max()) >= layer.out_channels):
        raise ValueError(f"channels {ch.tolist()} out of range for {layer_name!r} ({layer.out_channels} channels).")
    for name in ("weight", "bias"):
        _mask_param(layer, name, ch)
    if bn_name is not None:
        bn = model.get_submodule(bn_name)
        for name in ("weight", "bias"):
            _mask_param(bn, name, ch)


def pruned_channels(model: nn.Module, layer_name: str) -> list[int]:
    """Output channels of ``model.<layer_name>`` whose weight mask (or, if permanent, whole weight) is zero."""
    layer = model.get_submodule(layer_name)
    w = getattr(layer, "weight_mask", None)
    w = layer.weight if w is None else w
    return torch.nonzero(w.detach().reshape(w.shape[0], -1).abs().sum(1) == 0).flatten().tolist()


def make_pruning_permanent(model: nn.Module) -> nn.Module:
    """Fold every ``torch.nn.utils.prune`` mask into its parameter (plain ``state_dict`` keys again)."""
    for module in model.modules():
        for name in ("weight", "bias"):
            if hasattr(module, name + "_mask"):
                prune.remove(module, name)
    return model


def _keep_index(n: int, remove: torch.Tensor, device: torch.device) -> torch.Tensor:
    keep = torch.ones(n, dtype=torch.bool)
    keep[remove] = False
    return torch.nonzero(keep).flatten().to(device)


@torch.no_grad()
def remove_channels(
    model: nn.Module,
    layer_name: str,
    channels: Sequence[int] | torch.Tensor | None = None,
    example_input: torch.Tensor | None = None,
    atol: float = 1e-5,
) -> nn.Module:
    """Physically delete output channels of ``model.<layer_name>`` in place (see module doc for what is supported).

    The channels must be pruned (output exactly zero: conv and BN masked) for the outputs to stay equal; by
    default the currently masked channels (:func:`pruned_channels`) are removed. Masks are made permanent first.

    Args:
        model: the network (modified in place and returned).
        layer_name: the conv to shrink.
        channels: channels to delete (default: the masked ones).
        example_input: if given, the outputs before and after removal are compared (``atol``) in eval mode and a
            ``RuntimeError`` is raised if they differ (e.g. for a branching network).
        atol: tolerance of that check.
    """
    if channels is None:
        channels = pruned_channels(model, layer_name)
    ch = torch.as_tensor(list(channels) if not isinstance(channels, torch.Tensor) else channels, dtype=torch.long)
    layer, bn_name, consumer_name = find_following_modules(model, layer_name)
    if consumer_name is None:
        raise ValueError(f"no Conv/Linear consumes the output of {layer_name!r}; cannot remove its channels.")
    if ch.numel() == 0:
        return model
    if ch.numel() >= layer.out_channels:
        raise ValueError(f"cannot remove all {layer.out_channels} channels of {layer_name!r}.")
    was_training = model.training
    model.eval()
    reference = model(example_input) if example_input is not None else None
    make_pruning_permanent(model)
    dev = layer.weight.device
    keep = _keep_index(layer.out_channels, ch, dev)

    layer.weight = nn.Parameter(layer.weight[keep].clone())
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias[keep].clone())
    layer.out_channels = int(keep.numel())
    if bn_name is not None:
        bn = model.get_submodule(bn_name)
        if bn.weight is not None:
            bn.weight = nn.Parameter(bn.weight[keep].clone())
            bn.bias = nn.Parameter(bn.bias[keep].clone())
        if bn.running_mean is not None:
            bn.running_mean = bn.running_mean[keep].clone()
            bn.running_var = bn.running_var[keep].clone()
        bn.num_features = int(keep.numel())
    consumer = model.get_submodule(consumer_name)
    n_old = keep.numel() + ch.numel()
    if isinstance(consumer, _CONV):
        if consumer.groups != 1:
            raise ValueError(f"consumer {consumer_name!r} is a grouped conv; not supported.")
        if consumer.in_channels != n_old:
            raise ValueError(f"consumer {consumer_name!r} has {consumer.in_channels} inputs, expected {n_old}.")
        consumer.weight = nn.Parameter(consumer.weight[:, keep].clone())
        consumer.in_channels = int(keep.numel())
    else:  # Linear after pooling + flatten (channel-major)
        if consumer.in_features % n_old:
            raise ValueError(
                f"consumer {consumer_name!r} has in_features={consumer.in_features}, "
                f"not a multiple of {n_old} channels."
            )
        k = consumer.in_features // n_old
        cols = (keep.unsqueeze(1) * k + torch.arange(k, device=dev)).flatten()
        consumer.weight = nn.Parameter(consumer.weight[:, cols].clone())
        consumer.in_features = int(cols.numel())
    if reference is not None:
        try:
            out = model(example_input)
        except RuntimeError as e:
            raise RuntimeError(
                f"forward failed after removing channels of {layer_name!r} ({e}); the network is probably branching "
                "(residual/concat), which physical removal does not support. The model is left modified."
            ) from e
        if out.shape != reference.shape or not torch.allclose(out, reference, atol=atol):
            raise RuntimeError(
                f"outputs changed after removing channels {ch.tolist()} of {layer_name!r} (max diff "
                f"{(out - reference).abs().max().item() if out.shape == reference.shape else 'shape'}); the network "
                "is probably branching (residual/concat), which physical removal does not support."
            )
    model.train(was_training)
    return model
