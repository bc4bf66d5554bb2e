# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""User-provided pretrained weights for any bundle's network (a local checkpoint file, never a download).

FairDi's small-group teachers and SCP's channel redundancy both assume a pretrained backbone, and APPLE a deployed
model: every bundle therefore takes a ``pretrained`` config id whose keys are the arguments of
:func:`load_pretrained_weights`::

    "pretrained": {"path": null, "strict": true, "exclude": null, "key": null},
    "network": "$monai_fair.networks.load_pretrained_weights(@network_def, **@pretrained).to(@device)"

``path: null`` (the default) keeps the network's fresh initialisation.

The file is read with ``torch.load(weights_only=True)`` (tensors and plain containers only: no pickled code). Its
parameter names must be those of the MONAI network the bundle builds (``network_def``, e.g. ``conv1.weight``,
``layer1.0.bn1.running_mean``, ``fc.weight`` for ``monai.networks.nets.resnet10``), as written by
``torch.save(net.state_dict())``, by MONAI's ``CheckpointSaver`` (``{"model": state_dict}``), by a
``TrainingResumeHandler`` (``{"network": state_dict}``) or by a ``DistributedDataParallel`` model (``module.``
prefixes, removed). Other layouts: ``key`` names the entry holding the state dict, ``prefix`` is removed from the
names (e.g. ``"backbone."``), ``exclude`` is a regular expression of parameter names to leave at their
initialisation (e.g. ``"^fc\\."`` for a head trained on other classes).

* ``strict=True``: every parameter and buffer of the network (except ``exclude``) must be in the file with the same
  shape, and the file must hold nothing else; otherwise one error lists the missing, unexpected and mismatched names.
* ``strict=False``: the entries whose name and shape match are copied (MONAI's
  :func:`monai.networks.utils.copy_model_state`); the rest keep their initialisation, and the counts are logged. A
  file of which *no* entry matches is an error (wrong network names), never a silent no-op.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from monai.networks.utils import copy_model_state
from torch import nn

__all__ = ["load_pretrained_weights", "read_state_dict", "freeze_backbone", "PRETRAINED_WRAPPER_KEYS"]

logger = logging.getLogger(__name__)

#: the entries a checkpoint file may wrap its state dict in (MONAI CheckpointSaver, resume files, common layouts)
PRETRAINED_WRAPPER_KEYS = ("model", "network", "state_dict")


def read_state_dict(path: str | os.PathLike, key: str | None = None, prefix: str = "") -> dict[str, torch.Tensor]:
    """Read a state dict from the local file ``path`` (``weights_only=True``), unwrapped and with prefixes removed.

    Args:
        path: the checkpoint file.
        key: the entry holding the state dict; ``None``: the file itself, or its only
            ``PRETRAINED_WRAPPER_KEYS`` entry that is a mapping.
        prefix: removed from the start of every name that has it (``"module."`` is always removed).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read with ``weights_only=True`` or holds no state dict at ``key``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights file '{path}' (config id 'pretrained#path') not found.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickled objects, truncated files
        raise ValueError(f"cannot read pretrained weights '{path}' with weights_only=True: {e}") from e
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"pretrained weights '{path}' have no entry '{key}' (pretrained#key); found {found}.")
        obj = obj[key]
    elif isinstance(obj, Mapping):
        wrapped = [k for k in PRETRAINED_WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(wrapped) == 1 and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = obj[wrapped[0]]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()) or not obj:
        raise ValueError(
            f"pretrained weights '{path}' are not a state dict of tensors; name the entry holding it with "
            f"pretrained#key (one of {PRETRAINED_WRAPPER_KEYS} is found automatically)."
        )
    out = {}
    for name, value in obj.items():
        for p in ("module.", prefix):
            if p and name.startswith(p):
                name = name[len(p) :]
        out[name] = value
    return out


def load_pretrained_weights(
    network: nn.Module,
    path: str | os.PathLike | None = None,
    strict: bool = True,
    exclude: str | None = None,
    key: str | None = None,
    prefix: str = "",
) -> nn.Module:
    """Load user-provided pretrained weights into ``network`` (in place) and return it; see the module docstring.

    Args:
        network: the network built by the bundle's ``network_def``.
        path: a local checkpoint file; ``None`` or ``""``: nothing is loaded.
        strict: all names and shapes must match (``True``), or copy the matching ones only (``False``).
        exclude: regular expression of parameter names left at their initialisation (both modes).
        key: the file's entry holding the state dict (default: found automatically).
        prefix: removed from the file's parameter names.

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable file, or names/shapes that do not fit (see above).
    """
    if path is None or os.fspath(path) == "":
        return network
    src = read_state_dict(path, key=key, prefix=prefix)
    skip = re.compile(exclude) if exclude else None
    if skip is not None:
        src = {k: v for k, v in src.items() if not skip.search(k)}
    dst = {k: v for k, v in network.state_dict().items() if skip is None or not skip.search(k)}
    mismatched = sorted(k for k in dst.keys() & src.keys() if tuple(dst[k].shape) != tuple(src[k].shape))
    if strict:
        missing, unexpected = sorted(dst.keys() - src.keys()), sorted(src.keys() - dst.keys())
        if missing or unexpected or mismatched:
            raise ValueError(
                f"pretrained weights '{os.fspath(path)}' do not fit {type(network).__name__} (pretrained#strict=true): "
                + _listing(missing=missing, unexpected=unexpected, shape_mismatch=mismatched)
                + ". Use the MONAI network's parameter names, pretrained#exclude for a replaced head, or strict=false."
            )
        network.load_state_dict({**network.state_dict(), **src}, strict=True)
        logger.info(f"pretrained weights: loaded all {len(src)} entries of '{os.fspath(path)}'.")
        return network
    _, updated, _ = copy_model_state(network, src, exclude_vars=exclude, inplace=True)
    if not updated:
        raise ValueError(
            f"no entry of pretrained weights '{os.fspath(path)}' matches {type(network).__name__} by name and shape "
            f"(file names e.g. {sorted(src)[:3]}, network names e.g. {sorted(dst)[:3]}); set pretrained#prefix or "
            "pretrained#key."
        )
    logger.info(
        f"pretrained weights (strict=false): {len(updated)} of {len(dst)} network entries loaded from "
        f"'{os.fspath(path)}'; {len(dst) - len(updated)} kept their initialisation ({len(mismatched)} shape "
        "mismatches)."
    )
    return network


def _listing(**names: Any) -> str:
    parts = [f"{what.replace('_', ' ')} {len(v)} (e.g. {v[:4]})" for what, v in names.items() if v]
    return "; ".join(parts)


def freeze_backbone(network: nn.Module, head_name: str) -> nn.Module:
    """Freeze every part of ``network`` except its head ``head_name`` (a name of ``network.named_modules()``).

    The frozen parameters stop requiring gradients, and the frozen modules stay in eval mode whatever
    ``network.train()`` says (a forward pre-hook puts them back before every forward pass), so their BatchNorm
    statistics and dropout are those of the pretrained backbone: training then fits a new head on fixed features
    (FairDi's re-implementation, linear probing). The state dict's names are unchanged. Returns ``network``.
    """
    modules = dict(network.named_modules())
    if head_name not in modules or head_name == "":
        raise ValueError(f"head '{head_name}' is not a module of {type(network).__name__} (e.g. {list(modules)[1:6]}).")
    prefix = head_name + "."
    for name, p in network.named_parameters():
        if not name.startswith(prefix):
            p.requires_grad_(False)
    frozen = [m for n, m in modules.items() if n and n != head_name and not n.startswith(prefix)]
    frozen = [m for m in frozen if not any(True for _ in m.children())]  # leaves only: heads nested in a parent

    def _keep_frozen_in_eval(module: nn.Module, args: Any) -> None:
        for m in frozen:
            m.training = False

    network.register_forward_pre_hook(_keep_frozen_in_eval)
    return network
